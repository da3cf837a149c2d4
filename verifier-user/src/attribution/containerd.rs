//! containerd, read through its gRPC API: which image a container runs
//! and that image's digest.
//!
//! Only two calls are needed (`Containers/Get`, `Images/Get`), so the
//! messages are declared here with prost, field numbers taken from
//! containerd's `api/services/{containers,images}/v1/*.proto`, instead of
//! generating the whole API (which needs `protoc` at build time). Unknown
//! fields are skipped by prost, so newer daemons stay compatible. The
//! namespace goes in the `containerd-namespace` request header, as every
//! containerd client does.
//!
//! The facade is synchronous: it is called from the agent's blocking
//! resolution threads and drives the async client on the agent's runtime
//! through a [`tokio::runtime::Handle`].

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

use tonic::{
    codegen::http::uri::PathAndQuery,
    transport::{Channel, Endpoint, Uri},
};

/// containerd's default socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("cannot reach containerd at {socket}: {source}; is it running (or pass --containerd-socket)?")]
    Connect { socket: String, source: tonic::transport::Error },
    #[error("containerd {call} for {what} in namespace {namespace}: {status}")]
    Call { call: &'static str, what: String, namespace: String, status: Box<tonic::Status> },
    #[error("containerd returned no {0}")]
    Empty(&'static str),
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetContainerRequest {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetContainerResponse {
    #[prost(message, optional, tag = "1")]
    container: Option<ContainerMsg>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerMsg {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(map = "string, string", tag = "2")]
    labels: HashMap<String, String>,
    #[prost(string, tag = "3")]
    image: String,
    #[prost(string, tag = "6")]
    snapshotter: String,
    #[prost(string, tag = "7")]
    snapshot_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetImageRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetImageResponse {
    #[prost(message, optional, tag = "1")]
    image: Option<ImageMsg>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ImageMsg {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "3")]
    target: Option<DescriptorMsg>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DescriptorMsg {
    #[prost(string, tag = "1")]
    media_type: String,
    #[prost(string, tag = "2")]
    digest: String,
    #[prost(int64, tag = "3")]
    size: i64,
}

/// What containerd says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    pub id: String,
    /// Image reference the container was created from.
    pub image: String,
    /// Digest of the image's target (manifest or index), `sha256:<hex>`,
    /// when the image is still known to containerd.
    pub image_digest: Option<String>,
    pub labels: HashMap<String, String>,
    pub snapshotter: String,
    pub snapshot_key: String,
}

/// A containerd API client (one connection, reused).
pub struct Containerd {
    socket: PathBuf,
    handle: tokio::runtime::Handle,
    channel: Mutex<Option<Channel>>,
}

impl Containerd {
    /// A client for `socket`; connects on first use, on `handle`'s runtime.
    pub fn new(socket: PathBuf, handle: tokio::runtime::Handle) -> Self {
        Self { socket, handle, channel: Mutex::new(None) }
    }

    /// Container `id` of `namespace`, with its image's digest (blocking;
    /// call from a blocking thread, never from async code).
    pub fn container(&self, namespace: &str, id: &str) -> Result<ContainerRecord, ContainerdError> {
        self.handle.block_on(self.container_async(namespace, id))
    }

    async fn container_async(&self, namespace: &str, id: &str) -> Result<ContainerRecord, ContainerdError> {
        let channel = self.channel().await?;
        let resp: GetContainerResponse = unary(
            channel.clone(),
            "/containerd.services.containers.v1.Containers/Get",
            namespace,
            GetContainerRequest { id: id.to_owned() },
        )
        .await
        .map_err(|status| ContainerdError::Call {
            call: "Containers/Get",
            what: id.to_owned(),
            namespace: namespace.to_owned(),
            status: Box::new(status),
        })?;
        let c = resp.container.ok_or(ContainerdError::Empty("container"))?;
        let image_digest = if c.image.is_empty() {
            None
        } else {
            let got: Result<GetImageResponse, _> = unary(
                channel,
                "/containerd.services.images.v1.Images/Get",
                namespace,
                GetImageRequest { name: c.image.clone() },
            )
            .await;
            // An image deleted after the container was created leaves the
            // container running: no digest, not an error.
            got.ok().and_then(|r| r.image).and_then(|i| i.target).map(|t| t.digest).filter(|d| !d.is_empty())
        };
        Ok(ContainerRecord {
            id: c.id,
            image: c.image,
            image_digest,
            labels: c.labels,
            snapshotter: c.snapshotter,
            snapshot_key: c.snapshot_key,
        })
    }

    async fn channel(&self) -> Result<Channel, ContainerdError> {
        if let Some(c) = self.channel.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(c);
        }
        let socket = self.socket.clone();
        // The URI is required by tonic but unused: the connector dials the
        // unix socket.
        let endpoint = Endpoint::from_static("http://containerd.invalid")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5));
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(hyper_util::rt::TokioIo::new) }
            }))
            .await
            .map_err(|source| ContainerdError::Connect {
                socket: self.socket.display().to_string(),
                source,
            })?;
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel.clone());
        Ok(channel)
    }
}

async fn unary<Req, Resp>(
    channel: Channel,
    path: &'static str,
    namespace: &str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(req);
    let ns =
        namespace.parse().map_err(|_| tonic::Status::invalid_argument("namespace is not a valid header"))?;
    request.metadata_mut().insert("containerd-namespace", ns);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(request, PathAndQuery::from_static(path), codec).await.map(tonic::Response::into_inner)
}

/// The namespace of containerd container `id`: the directory containerd's
/// runc shim keeps its task state in (`<state>/io.containerd.runtime.v2.task/<ns>/<id>`).
pub fn namespace_of(state_dir: &std::path::Path, id: &str) -> Option<String> {
    let tasks = state_dir.join("io.containerd.runtime.v2.task");
    std::fs::read_dir(tasks)
        .ok()?
        .flatten()
        .find_map(|ns| ns.path().join(id).is_dir().then(|| ns.file_name().to_string_lossy().into_owned()))
}
