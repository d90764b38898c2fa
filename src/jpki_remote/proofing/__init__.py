"""Identity proofing (本人確認): face match, liveness, security codes and their delivery, rate limits."""
