"""jpki-remote: non-face-to-face JPKI certificate renewal and My Number Card password reset."""

__version__ = "0.1.0"
