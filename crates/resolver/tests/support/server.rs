//! A resolver served on `127.0.0.1:0` over a sled store in a temporary directory, with the
//! test tokens, for the gRPC tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::admin_service_client::AdminServiceClient;
use strata_proto::v1::policy_service_client::PolicyServiceClient;
use strata_resolver::{Resolver, SledStore};
use tokio::sync::oneshot;
use tonic::Request;
use tonic::transport::Channel;

pub const ADMIN: &str = "test-admin-token";
pub const SERVICE: &str = "test-service-token";

pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(data: &Path) -> Server {
        let store = SledStore::open(data).unwrap();
        let (resolver, _) =
            Resolver::open(Arc::new(store), Some(ADMIN.into()), Some(SERVICE.into()))
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            strata_resolver::serve(Arc::new(resolver), listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    pub async fn policy(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel().await)
    }

    /// Stop serving and release the store (so the data dir can be reopened)
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(mut t) = self.task.take() {
            // graceful shutdown waits for clients to hang up; tests may still hold some
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
                let _ = t.await;
            }
        }
    }
}

pub fn auth<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}
