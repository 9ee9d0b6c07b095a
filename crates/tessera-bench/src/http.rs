//! The HTTP client: one hyper HTTP/1.1 connection per worker, kept alive and re-opened after a
//! transport error or a close by the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::report::Failure;
use crate::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server: its address, `Host` header and path prefix.
pub(crate) struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    prefix: String,
    timeout: Duration,
}

impl Target {
    /// Parses an `http://host[:port][/prefix]` URL and resolves the host once.
    pub(crate) async fn resolve(url: &str, timeout: Duration) -> Result<Self, Error> {
        let invalid = || Error::Option(format!("--url {url}: expected http://host[:port][/path]"));
        let uri: hyper::Uri = url.parse().map_err(|_| invalid())?;
        let authority = uri
            .authority()
            .filter(|_| uri.scheme_str() == Some("http"))
            .ok_or_else(invalid)?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::Resolve(authority.to_string(), e))?
            .next()
            .ok_or_else(|| Error::Resolve(authority.to_string(), std::io::ErrorKind::NotFound.into()))?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// A GET of `path_and_query` (below the prefix).
    pub(crate) fn get(&self, path_and_query: &str, cookie: Option<String>) -> Result<Request<Full<Bytes>>, Failure> {
        self.request(Method::GET, path_and_query, None, None, cookie)
    }

    /// A form POST to `path`, optionally with an `Authorization` and a `Cookie` header.
    pub(crate) fn post_form(
        &self,
        path: &str,
        form: String,
        authorization: Option<&HeaderValue>,
        cookie: Option<String>,
    ) -> Result<Request<Full<Bytes>>, Failure> {
        self.request(Method::POST, path, Some(form), authorization, cookie)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        form: Option<String>,
        authorization: Option<&HeaderValue>,
        cookie: Option<String>,
    ) -> Result<Request<Full<Bytes>>, Failure> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.host);
        if form.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(authorization) = authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if let Some(cookie) = cookie {
            builder = builder.header(COOKIE, cookie);
        }
        builder
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| Failure::unexpected(format!("building a request to {path}: {e}")))
    }
}

/// What the server answered.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A worker's connection.
pub(crate) struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self { target, sender: None }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `request` and reads the whole answer; any failure drops the connection.
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        match tokio::time::timeout(self.target.timeout, self.exchange(request)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(Failure::transport(error.to_string())),
            Err(_) => Err(Failure::timeout()),
        }
    }

    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, BoxError> {
        // Taken out while in use: dropped, not put back, if anything below fails or times out.
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => connect(self.target.addr).await?,
        };
        sender.ready().await?;
        let (parts, body) = sender.send_request(request).await?.into_parts();
        let body = body.collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Its errors reach the next `send` through the closed sender.
        let _closed = connection.await;
    });
    Ok(sender)
}
