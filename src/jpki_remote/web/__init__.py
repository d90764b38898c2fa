"""FastAPI application: JSON API, OCSP/CRL endpoints, kiosk / portal / counter / admin pages."""
