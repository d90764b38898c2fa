"""The terminal agent (端末): owns the card reader and relays opaque APDUs between card and server."""
