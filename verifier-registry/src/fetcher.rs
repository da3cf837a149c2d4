//! The fetcher the agent calls off its event path: one image digest in,
//! its attestations out, from the disk cache when it has them and from the
//! registry otherwise.
//!
//! - **Single flight**: concurrent calls for one digest share one fetch
//!   (two containers of a new image start together; the registry sees one
//!   set of requests).
//! - **Bounded**: at most `max_concurrent` images are fetched at a time
//!   (a semaphore), each within `fetch_timeout` on top of the per-request
//!   timeout, so a dead registry costs a bounded wait and no pile-up.
//! - **Offline**: with `offline` set the registry is never contacted; a
//!   miss is an error that says so. A registry failure with a stale
//!   negative entry in the cache answers from that entry.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OnceCell, Semaphore};

use crate::{
    cache::{Cache, CacheError, Cached},
    client::{Client, ClientOptions, RegistryError},
    discover::{self, Attestation, Discovery, Subject},
    reference::{Digest, ImageRef, RefError},
};

/// How the fetcher works.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    pub client: ClientOptions,
    /// Cache directory (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Never contact a registry; answer from the cache only.
    pub offline: bool,
    /// Images fetched at the same time.
    pub max_concurrent: usize,
    /// Bound on one image's whole discovery.
    pub fetch_timeout: Duration,
    /// How long "nothing found" is believed before asking again.
    pub negative_ttl: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            client: ClientOptions::default(),
            cache_dir: Some(PathBuf::from(crate::cache::DEFAULT_DIR)),
            offline: false,
            max_concurrent: 4,
            fetch_timeout: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(600),
        }
    }
}

/// Errors from [`Fetcher`]. Cloneable: single-flight hands one result to
/// every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Reference(Arc<RefError>),
    #[error("setting up the registry client: {0}")]
    Setup(Arc<RegistryError>),
    #[error("fetching attestations of {image}: {source}")]
    Registry { image: String, source: Arc<RegistryError> },
    #[error(transparent)]
    Cache(Arc<CacheError>),
    #[error(
        "{image}: not in the attestation cache and the fetcher is offline (fetch it once with network, or copy the cache directory)"
    )]
    Offline { image: String },
    #[error("fetching attestations of {image}: no answer within {secs} s (registry slow or unreachable)")]
    Timeout { image: String, secs: u64 },
}

/// What one lookup produced.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The digests looked at (the image first; its index or platform
    /// manifest after).
    pub subjects: Vec<Subject>,
    pub attestations: Vec<Attestation>,
    /// Answered from the disk cache, without the network.
    pub from_cache: bool,
}

type Flight = Arc<OnceCell<Result<Arc<Fetched>, FetchError>>>;

/// The attestation fetcher. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    cache: Option<Arc<Cache>>,
    cfg: FetcherConfig,
    permits: Semaphore,
    flights: Mutex<HashMap<Digest, Flight>>,
}

impl Fetcher {
    pub fn new(cfg: FetcherConfig) -> Result<Self, FetchError> {
        let client = Client::new(cfg.client.clone()).map_err(|e| FetchError::Setup(Arc::new(e)))?;
        let cache = match &cfg.cache_dir {
            Some(d) => Some(Arc::new(Cache::open(d).map_err(|e| FetchError::Cache(Arc::new(e)))?)),
            None => None,
        };
        let permits = Semaphore::new(cfg.max_concurrent.max(1));
        Ok(Self {
            inner: Arc::new(Inner { client, cache, cfg, permits, flights: Mutex::new(HashMap::new()) }),
        })
    }

    /// The attestations of `image_ref` (`registry/repo[:tag]`, as the
    /// runtime names the image) at `digest`.
    pub async fn get(&self, image_ref: &str, digest: &str) -> Result<Vec<Attestation>, FetchError> {
        Ok(self.lookup(image_ref, digest).await?.attestations.clone())
    }

    /// Like [`Fetcher::get`], with the subjects looked at and whether the
    /// cache answered.
    pub async fn lookup(&self, image_ref: &str, digest: &str) -> Result<Arc<Fetched>, FetchError> {
        let reference = |e| FetchError::Reference(Arc::new(e));
        let mut image = ImageRef::parse(image_ref).map_err(reference)?;
        let digest = Digest::parse(digest).map_err(reference)?;
        image.digest = Some(digest.clone());
        let flight = {
            let mut f = self.inner.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f.entry(digest.clone()).or_default().clone()
        };
        let result = flight.get_or_init(|| self.inner.fetch(&image, &digest)).await.clone();
        let mut f = self.inner.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.get(&digest).is_some_and(|x| Arc::ptr_eq(x, &flight)) {
            f.remove(&digest);
        }
        result
    }
}

impl Inner {
    async fn cached(&self, digest: &Digest) -> Result<Option<Cached>, FetchError> {
        let Some(cache) = self.cache.clone() else { return Ok(None) };
        let d = digest.clone();
        // Blob reads and their sha256 stay off the async threads.
        tokio::task::spawn_blocking(move || cache.load(&d))
            .await
            .unwrap_or(Ok(None))
            .map_err(|e| FetchError::Cache(Arc::new(e)))
    }

    async fn fetch(&self, image: &ImageRef, digest: &Digest) -> Result<Arc<Fetched>, FetchError> {
        let name = image.to_string();
        let cached = self.cached(digest).await?;
        let answer = |d: Discovery| {
            Arc::new(Fetched { subjects: d.subjects, attestations: d.attestations, from_cache: true })
        };
        let stale_negative = match cached {
            Some(c)
                if !c.discovery.attestations.is_empty()
                    || c.age < self.cfg.negative_ttl
                    || self.cfg.offline =>
            {
                return Ok(answer(c.discovery));
            }
            Some(c) => Some(c.discovery),
            None => None,
        };
        if self.cfg.offline {
            return Err(FetchError::Offline { image: name });
        }
        let found = {
            let _permit = self.permits.acquire().await;
            let secs = self.cfg.fetch_timeout.as_secs();
            match tokio::time::timeout(
                self.cfg.fetch_timeout,
                discover::discover(&self.client, image, digest),
            )
            .await
            {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    if let Some(d) = stale_negative {
                        tracing::warn!(image = %name, error = %e, "registry failed; using the cached 'nothing found'");
                        return Ok(answer(d));
                    }
                    return Err(FetchError::Registry { image: name, source: Arc::new(e) });
                }
                Err(_) => return Err(FetchError::Timeout { image: name, secs }),
            }
        };
        if let Some(cache) = self.cache.clone() {
            let (d, n, f) = (digest.clone(), name.clone(), found.clone());
            let stored = tokio::task::spawn_blocking(move || cache.store(&n, &d, &f)).await;
            if let Ok(Err(e)) = stored {
                // The answer is still good; the next restart refetches.
                tracing::warn!(image = %name, error = %e, "could not cache attestations");
            }
        }
        Ok(Arc::new(Fetched {
            subjects: found.subjects,
            attestations: found.attestations,
            from_cache: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that accepts connections and never answers: the fetch
    /// ends at the fetcher's bound with an error that says so, and an
    /// offline fetcher never connects at all.
    #[tokio::test]
    async fn a_silent_registry_costs_the_timeout_and_offline_never_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(conn);
            }
        });
        let cfg = |offline| FetcherConfig {
            client: ClientOptions { insecure: vec![host.clone()], ..Default::default() },
            cache_dir: None,
            offline,
            fetch_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let digest = format!("sha256:{}", "1".repeat(64));
        let image = format!("{host}/app");
        let started = std::time::Instant::now();
        let r = Fetcher::new(cfg(false)).expect("fetcher").get(&image, &digest).await;
        assert!(matches!(r, Err(FetchError::Timeout { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by fetch_timeout");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        let r = Fetcher::new(cfg(true)).expect("fetcher").get(&image, &digest).await;
        assert!(matches!(r, Err(FetchError::Offline { .. })), "{r:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "offline made no connection");
    }
}
