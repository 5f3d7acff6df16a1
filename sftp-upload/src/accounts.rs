//! What the binary needs to manage accounts, in one place: the SSH host key (generated on first
//! start, loaded later, shown by its fingerprint), password hashes (argon2id, PHC format) and
//! OpenSSH `authorized_keys` files. The endpoint checks logins with the same functions, so a
//! hash that `yadokari user passwd` writes or a key that `yadokari user key` adds is accepted
//! exactly as it was checked.

pub use crate::auth::{authorized_keys, hash_password, is_password_hash, key_allowed};
pub use crate::hostkey::{
    fingerprint as host_key_fingerprint, generate as generate_host_key,
    load_or_create as load_or_create_host_key,
};
