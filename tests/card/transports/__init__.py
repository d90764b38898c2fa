"""Tests of the card transports and of our card through the OS smart-card stack (pcscd + vpcd, OpenSC)."""
