"""Fixed values shared by the fuzz harnesses and the corpus builder."""

from __future__ import annotations

from tertulia.bridge.transport.ice import IceCredentials

# The harnesses' endpoint credentials, fixed so that seeded STUN checks carry a valid
# MESSAGE-INTEGRITY and the fuzzer reaches the code behind it.
CREDS = IceCredentials("fuzzufrg", "fuzz-password-0123456789", "peer", "peer-password-0123456789")
