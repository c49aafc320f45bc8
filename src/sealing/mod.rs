//! Secrets at rest (CONTRACT §7.3): with `HOOKD_ENCRYPTION_KEYS`, every webhook secret,
//! previous secret and Ed25519 private key is stored sealed with XChaCha20-Poly1305.
//!
//! The one idea to know: a sealed value is self-describing text in the same column as a
//! clear one, `enc:v1:<key id>:<base64 of nonce || ciphertext>`, so clear values written
//! before encryption was turned on keep working beside sealed ones (and `hookd secrets
//! reencrypt` seals them), the JSON of `previous_keys` keeps its shape, and no schema change
//! is needed. The webhook's id is the associated data: a value copied to another row does
//! not open. The store seals on write and opens on read (`Keyring`), so nothing above it
//! ever sees a sealed value.

mod keyring;
mod keys;
pub mod reencrypt;

pub use keyring::{Keyring, OpenError, SEALED_PREFIX};
pub use keys::{parse_key_list, valid_key_id, KeyListError, NamedKey, MAX_KEY_ID_LEN};
