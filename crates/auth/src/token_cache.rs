//! Tokens already validated, so a client reusing its token pays the signature check once.
//! Keyed by the SHA-256 of the token (the token itself is never stored), bounded, and each
//! entry dies at the token's own `exp`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Entries held at most by default: about 300 bytes each, so ~3 MB.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

type TokenHash = [u8; 32];

struct Entry {
    principal: Arc<Principal>,
    expires_at: i64,
}

/// A bounded map from token hash to the principal it validated to.
///
/// Entries expire at the token's `exp` without the validator's leeway, so a cached answer is
/// never more generous than a fresh validation. SHA-256 because a collision would let one
/// token borrow another's identity; a fast non-cryptographic hash would not be safe here.
pub struct TokenCache {
    entries: RwLock<HashMap<TokenHash, Entry>>,
    capacity: usize,
    /// Bumped by [`TokenCache::clear`], so whoever remembers a validation elsewhere (a
    /// connection its last token) can tell it no longer holds.
    generation: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_TOKEN_CACHE_ENTRIES)
    }
}

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// A cache of at most `capacity` entries (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: RwLock::new(HashMap::with_capacity(capacity.min(1024))),
            capacity,
            generation: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The principal `token` validated to, if cached and not expired at `now_unix`.
    pub fn get(&self, token: &str, now_unix: i64) -> Option<Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        let key = hash(token);
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .filter(|e| now_unix < e.expires_at)
            .map(|e| Arc::clone(&e.principal))
    }

    /// Remembers a validated token until its `exp`. When full, expired entries go first;
    /// if none has expired, an arbitrary tenth of the cache is dropped, so the O(n) scan is
    /// paid once per many insertions.
    pub fn insert(&self, token: &str, principal: Arc<Principal>, now_unix: i64) {
        if self.capacity == 0 || principal.expires_at <= now_unix {
            return;
        }
        let key = hash(token);
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| now_unix < e.expires_at);
            if map.len() >= self.capacity {
                let excess = map.len() + 1 - self.capacity + self.capacity / 10;
                let victims: Vec<TokenHash> = map.keys().take(excess).copied().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        let expires_at = principal.expires_at;
        map.insert(
            key,
            Entry {
                principal,
                expires_at,
            },
        );
    }

    /// Forgets every token, e.g. when the signing keys changed.
    pub fn clear(&self) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Changes whenever the cache is cleared.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
