"""The My Number Card (個人番号カード): APDU codec, applets, PINs, issuer secure messaging, state, transports."""
