"""Resident registry (住民基本台帳): municipalities, residents, cards issued, contacts, CA notifications."""
