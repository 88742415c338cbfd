//! A small RESP2 client: enough Redis for the fleet blocklist (HSET, HDEL, HGETALL, PUBLISH,
//! SUBSCRIBE) and the shared rate-limit buckets (EVALSHA through [`super::mux`]). Replies are
//! parsed with bounds on length and depth: a misbehaving server cannot make the daemon allocate
//! without limit.

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Largest bulk string accepted (a blocklist entry is well under 1 KiB).
const MAX_BULK: usize = 1 << 20;
/// Largest array accepted (HGETALL of a large blocklist: two items per entry).
const MAX_ARRAY: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("redis connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("redis protocol: {0}")]
    Protocol(String),
    #[error("redis replied with an error: {0}")]
    Server(String),
    #[error("redis connection closed")]
    Closed,
    #[error("too many redis requests waiting")]
    Full,
    #[error("no reply from redis within {0} ms")]
    Timeout(u128),
}

#[derive(Debug)]
pub struct Conn {
    io: BufReader<TcpStream>,
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Conn, RespError> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            io: BufReader::new(s),
        })
    }

    pub async fn send(&mut self, args: &[&[u8]]) -> Result<(), RespError> {
        self.io.get_mut().write_all(&encode(args)).await?;
        Ok(())
    }

    /// Sends a command and reads its reply; a server error becomes `RespError::Server`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        self.send(args).await?;
        match self.read().await? {
            Value::Error(e) => Err(RespError::Server(e)),
            v => Ok(v),
        }
    }

    pub async fn read(&mut self) -> Result<Value, RespError> {
        read_value(&mut self.io).await
    }
}

/// Reads one reply from `io` (a buffered stream or the read half of one).
pub async fn read_value<R: AsyncBufRead + Unpin + Send>(io: &mut R) -> Result<Value, RespError> {
    Box::pin(read_depth(io, 0)).await
}

async fn line<R: AsyncBufRead + Unpin + Send>(io: &mut R) -> Result<String, RespError> {
    let mut buf = Vec::new();
    let n = (&mut *io)
        .take(64 * 1024)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Err(RespError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(RespError::Protocol(
            "line without CRLF or longer than 64 KiB".into(),
        ));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| RespError::Protocol("line is not UTF-8".into()))
}

async fn read_depth<R: AsyncBufRead + Unpin + Send>(
    io: &mut R,
    depth: u32,
) -> Result<Value, RespError> {
    if depth > 4 {
        return Err(RespError::Protocol("reply nested too deeply".into()));
    }
    let line = line(io).await?;
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| RespError::Protocol("empty line".into()))?;
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| RespError::Protocol(format!("bad length {s:?}")))
    };
    Ok(match kind {
        "+" => Value::Simple(rest.to_owned()),
        "-" => Value::Error(rest.to_owned()),
        ":" => Value::Int(num(rest)?),
        "$" => {
            let n = num(rest)?;
            if n < 0 {
                return Ok(Value::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| RespError::Protocol("bad length".into()))?;
            if n > MAX_BULK {
                return Err(RespError::Protocol(format!("bulk string of {n} bytes")));
            }
            let mut buf = vec![0u8; n + 2];
            io.read_exact(&mut buf).await?;
            buf.truncate(n);
            Value::Bulk(Some(buf))
        }
        "*" => {
            let n = num(rest)?;
            if n < 0 {
                return Ok(Value::Array(None));
            }
            let n = usize::try_from(n).map_err(|_| RespError::Protocol("bad length".into()))?;
            if n > MAX_ARRAY {
                return Err(RespError::Protocol(format!("array of {n} items")));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(Box::pin(read_depth(io, depth + 1)).await?);
            }
            Value::Array(Some(items))
        }
        other => return Err(RespError::Protocol(format!("unknown reply type {other:?}"))),
    })
}

impl Value {
    pub fn into_bulks(self) -> Vec<Vec<u8>> {
        match self {
            Value::Array(Some(items)) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Bulk(Some(b)) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(
            encode(&[b"HGET", b"k", b""]),
            b"*3\r\n$4\r\nHGET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }
}
