"""The certification authorities (認証局): key store, profiles, lint-before-sign, issuance, revocation, CRL, OCSP."""
