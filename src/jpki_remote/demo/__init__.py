"""The demonstration: a municipality with residents and virtual cards, and a scripted run of every procedure."""
