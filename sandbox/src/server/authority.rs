//! Lets stock gRPC clients in: rewrites a request's `:authority` when it is a socket path.
//!
//! gRPC's C core (grpcio, and with it most Python code), grpc-java and grpc-swift send the
//! Unix socket's path (`/run/azr/sandbox.sock`) or a percent-encoded form of it as the HTTP/2
//! `:authority` of every request on a `unix:` channel. hyper's HTTP/2 layer (`h2`) checks
//! `:authority` against RFC 3986 and answers such a request with `RST_STREAM(PROTOCOL_ERROR)`,
//! so every call fails before the daemon sees it (`h2` has no switch for this; its pull request
//! to relax the check for Unix sockets is still open). The name carries no meaning on a local
//! socket (the daemon serves one service, whoever the peer names), so the daemon reads the
//! client's half of each connection through this filter first:
//!
//! - the connection preface and every frame other than `HEADERS`/`CONTINUATION` pass through
//!   byte for byte, streamed (a large `DATA` frame is never buffered whole);
//! - each header block (a `HEADERS` frame and its `CONTINUATION`s) is HPACK-decoded with the
//!   client's dynamic table, its `:authority` replaced by `localhost` when it is not a valid
//!   authority, and re-encoded as literals that never touch `h2`'s dynamic table, split into
//!   frames no larger than the server's maximum frame size. Every block is re-encoded, not
//!   only rewritten ones: the client's encoder indexes into the table *it* built, which `h2`'s
//!   decoder never sees, so passing any block through unchanged would desynchronise them.
//!
//! Anything malformed that the filter must understand (a broken HPACK block, a lone
//! `CONTINUATION`, a header frame larger than allowed) ends the connection with an I/O error,
//! as `h2` would end it with a connection error. The server's half of the connection is not
//! touched.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// `SETTINGS_MAX_FRAME_SIZE` as the server advertises it: the protocol's default, which the
/// daemon's HTTP/2 builder keeps (see `serve`). No client frame may be larger.
pub const MAX_FRAME_SIZE: usize = 16_384;
/// `SETTINGS_HEADER_TABLE_SIZE` as the server advertises it: the protocol's default. The
/// client's encoder may not grow its table beyond it.
pub const HEADER_TABLE_SIZE: usize = 4_096;
/// The largest header block (all its frames) the filter accepts. gRPC requests carry a few
/// hundred bytes of headers; this bounds what one connection can make the daemon hold.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// What a path-like `:authority` becomes (the name `h2` and grpc-go use on Unix sockets).
const LOCAL_AUTHORITY: &[u8] = b"localhost";

/// Why the filter ended a connection.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("HTTP/2 header frame of {0} bytes exceeds the maximum frame size")]
    FrameTooLarge(usize),
    #[error("HTTP/2 header block larger than {MAX_HEADER_BLOCK} bytes")]
    BlockTooLarge,
    #[error("HTTP/2 frame of type {0:#x} inside a header block")]
    InterruptedBlock(u8),
    #[error("HTTP/2 CONTINUATION frame without a header block to continue")]
    LoneContinuation,
    #[error("HTTP/2 HEADERS frame whose padding or priority exceeds its length")]
    BadPadding,
    #[error("HPACK: {0}")]
    Hpack(loona_hpack::decoder::DecoderError),
}

impl From<RewriteError> for io::Error {
    fn from(e: RewriteError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A header block waiting for its `CONTINUATION` frames.
struct Block {
    stream: u32,
    end_stream: bool,
    /// The 5 priority bytes of the `HEADERS` frame, kept as sent.
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server byte stream filter, independent of I/O: bytes in, bytes out.
pub struct Rewriter {
    decoder: loona_hpack::Decoder<'static>,
    preface_left: usize,
    /// Payload bytes of a pass-through frame not yet seen.
    passthrough: usize,
    pending: Option<Block>,
    /// Bytes received but not yet forming something the filter can act on.
    held: Vec<u8>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Rewriter {
            decoder,
            preface_left: PREFACE_LEN,
            passthrough: 0,
            pending: None,
            held: Vec::new(),
        }
    }
}

impl Rewriter {
    /// Consumes `input`, appending to `out` everything that can go to the server so far.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        self.held.extend_from_slice(input);
        let mut at = 0;
        let result = self.drain(&mut at, out);
        self.held.drain(..at);
        result
    }

    fn drain(&mut self, at: &mut usize, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        loop {
            let rest = &self.held[*at..];
            if rest.is_empty() {
                return Ok(());
            }
            if self.preface_left > 0 || self.passthrough > 0 {
                let wanted = if self.preface_left > 0 {
                    &mut self.preface_left
                } else {
                    &mut self.passthrough
                };
                let n = (*wanted).min(rest.len());
                out.extend_from_slice(&rest[..n]);
                *wanted -= n;
                *at += n;
                continue;
            }
            if rest.len() < FRAME_HEADER_LEN {
                return Ok(());
            }
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let kind = rest[3];
            let flags = rest[4];
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            if kind != TYPE_HEADERS && kind != TYPE_CONTINUATION {
                if self.pending.is_some() {
                    return Err(RewriteError::InterruptedBlock(kind));
                }
                out.extend_from_slice(&rest[..FRAME_HEADER_LEN]);
                self.passthrough = len;
                *at += FRAME_HEADER_LEN;
                continue;
            }
            if len > MAX_FRAME_SIZE {
                return Err(RewriteError::FrameTooLarge(len));
            }
            if rest.len() < FRAME_HEADER_LEN + len {
                return Ok(());
            }
            let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
            let block = if kind == TYPE_HEADERS {
                if self.pending.is_some() {
                    return Err(RewriteError::InterruptedBlock(kind));
                }
                let (priority, fragment) = headers_payload(payload, flags)?;
                self.pending = Some(Block {
                    stream,
                    end_stream: flags & FLAG_END_STREAM != 0,
                    priority,
                    fragment: Vec::new(),
                });
                fragment
            } else {
                match &self.pending {
                    Some(block) if block.stream == stream => payload,
                    _ => return Err(RewriteError::LoneContinuation),
                }
            };
            let pending = self
                .pending
                .as_mut()
                .ok_or(RewriteError::LoneContinuation)?;
            if pending.fragment.len() + block.len() > MAX_HEADER_BLOCK {
                return Err(RewriteError::BlockTooLarge);
            }
            pending.fragment.extend_from_slice(block);
            *at += FRAME_HEADER_LEN + len;
            if flags & FLAG_END_HEADERS != 0
                && let Some(done) = self.pending.take()
            {
                self.reencode(done, out)?;
            }
        }
    }

    fn reencode(&mut self, block: Block, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut encoded = Vec::with_capacity(block.fragment.len() * 2);
        let mut failed = None;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                if failed.is_some() {
                    return;
                }
                let value: &[u8] = if &name[..] == b":authority"
                    && http::uri::Authority::try_from(&value[..]).is_err()
                {
                    LOCAL_AUTHORITY
                } else {
                    &value
                };
                if encoded.len() + name.len() + value.len() + 12 > MAX_HEADER_BLOCK * 2 {
                    failed = Some(RewriteError::BlockTooLarge);
                    return;
                }
                literal_without_indexing(&name, value, &mut encoded);
            })
            .map_err(RewriteError::Hpack)?;
        if let Some(e) = failed {
            return Err(e);
        }
        write_header_frames(&block, &encoded, out);
        Ok(())
    }
}

/// Splits a `HEADERS` payload into its priority bytes and its header block fragment.
fn headers_payload(payload: &[u8], flags: u8) -> Result<(Option<[u8; 5]>, &[u8]), RewriteError> {
    let mut body = payload;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        let (&n, rest) = body.split_first().ok_or(RewriteError::BadPadding)?;
        pad = usize::from(n);
        body = rest;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (bytes, rest) = body
            .split_first_chunk::<5>()
            .ok_or(RewriteError::BadPadding)?;
        priority = Some(*bytes);
        body = rest;
    }
    let end = body
        .len()
        .checked_sub(pad)
        .ok_or(RewriteError::BadPadding)?;
    Ok((priority, &body[..end]))
}

/// HPACK "literal header field without indexing — new name", no Huffman coding (RFC 7541
/// §6.2.2): the receiver's dynamic table is never touched.
fn literal_without_indexing(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    for string in [name, value] {
        hpack_integer(string.len(), out);
        out.extend_from_slice(string);
    }
}

/// An HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1).
fn hpack_integer(mut n: usize, out: &mut Vec<u8>) {
    const PREFIX_MAX: usize = 127;
    if n < PREFIX_MAX {
        out.push(n as u8);
        return;
    }
    out.push(PREFIX_MAX as u8);
    n -= PREFIX_MAX;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

fn write_header_frames(block: &Block, encoded: &[u8], out: &mut Vec<u8>) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(MAX_FRAME_SIZE - priority_len);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    frame_header(
        priority_len + first.len(),
        TYPE_HEADERS,
        flags,
        block.stream,
        out,
    );
    if let Some(priority) = &block.priority {
        out.extend_from_slice(priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
        let flags = if tail.is_empty() { FLAG_END_HEADERS } else { 0 };
        frame_header(chunk.len(), TYPE_CONTINUATION, flags, block.stream, out);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(len: usize, kind: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// A connection whose inbound half goes through a [`Rewriter`].
pub struct Filtered<S> {
    inner: S,
    rewriter: Rewriter,
    ready: Vec<u8>,
    ready_at: usize,
    scratch: Box<[u8]>,
}

impl<S> Filtered<S> {
    pub fn new(inner: S) -> Self {
        Filtered {
            inner,
            rewriter: Rewriter::default(),
            ready: Vec::new(),
            ready_at: 0,
            scratch: vec![0; 32 * 1024].into_boxed_slice(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Filtered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                return Poll::Ready(Ok(()));
            }
            this.ready.clear();
            this.ready_at = 0;
            let mut raw = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // End of stream: whatever is held is an incomplete frame, which h2 would
                // not act on either.
                Poll::Ready(Ok(())) if raw.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let filled = raw.filled().len();
                    this.rewriter
                        .push(&this.scratch[..filled], &mut this.ready)?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Filtered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(payload.len(), kind, flags, stream, &mut out);
        out.extend_from_slice(payload);
        out
    }

    /// Splits the server-side byte stream back into frames: (type, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len =
                usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    /// Decodes what the server would see, with a fresh decoder (h2's table stays empty).
    fn server_headers(stream: &[u8]) -> Vec<Vec<(String, String)>> {
        assert_eq!(&stream[..PREFACE_LEN], PREFACE);
        let mut decoder = loona_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut block = Vec::new();
        for (kind, flags, _, payload) in frames(&stream[PREFACE_LEN..]) {
            if kind == TYPE_HEADERS || kind == TYPE_CONTINUATION {
                let skip = if kind == TYPE_HEADERS && flags & FLAG_PRIORITY != 0 {
                    5
                } else {
                    0
                };
                block.extend_from_slice(&payload[skip..]);
                if flags & FLAG_END_HEADERS != 0 {
                    let headers = decoder.decode(&block).expect("re-encoded block decodes");
                    blocks.push(
                        headers
                            .into_iter()
                            .map(|(n, v)| {
                                (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                            })
                            .collect(),
                    );
                    block.clear();
                }
            }
        }
        blocks
    }

    fn request_headers(authority: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/azr.sandbox.v1.Sandbox/Health"),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    fn through(input: &[u8], chunk: usize) -> Result<Vec<u8>, RewriteError> {
        let mut rewriter = Rewriter::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            rewriter.push(piece, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_is_kept() {
        // A real client encoder (with Huffman coding and dynamic-table insertions).
        let mut encoder = loona_hpack::Encoder::new();
        let headers = request_headers("/run/azr/sandbox.sock");
        let block = encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
        let out = through(&input, 4096).expect("rewrites");
        let seen = server_headers(&out);
        assert_eq!(seen.len(), 1);
        assert!(seen[0].contains(&(":authority".into(), "localhost".into())));
        assert!(seen[0].contains(&(":path".into(), "/azr.sandbox.v1.Sandbox/Health".into())));
        assert_eq!(seen[0].len(), 6);
        // The DATA frame follows unchanged.
        let tail = frames(&out[PREFACE_LEN..]);
        assert_eq!(
            tail.last().map(|f| (f.0, f.1, f.3.clone())),
            Some((0, 1, vec![0; 5]))
        );
    }

    #[test]
    fn valid_authorities_are_left_as_sent() {
        for authority in ["localhost", "sandbox:50051", "127.0.0.1:8080", "[::1]:1"] {
            let mut encoder = loona_hpack::Encoder::new();
            let headers = request_headers(authority);
            let block = encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
            let mut input = PREFACE.to_vec();
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block));
            let seen = server_headers(&through(&input, 7).expect("rewrites"));
            assert!(
                seen[0].contains(&(":authority".into(), authority.into())),
                "{authority}"
            );
        }
    }

    #[test]
    fn the_clients_dynamic_table_is_followed_across_blocks_and_split_reads() {
        // Literal with incremental indexing puts `:authority` at dynamic index 62; the second
        // request refers to it by index only.
        let path = b"%2Ftmp%2Fsandbox.sock";
        let mut first = vec![0x82, 0x86, 0x84]; // :method GET, :scheme http, :path /
        first.push(0x41); // literal with indexing, name = static 1 (:authority)
        first.push(path.len() as u8);
        first.extend_from_slice(path);
        let second = vec![0x82, 0x86, 0x84, 0xbe]; // 0xbe: indexed, index 62
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            1,
            &first,
        ));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &second,
        ));
        for chunk in [1, 2, 9, 10, 1000] {
            let seen = server_headers(&through(&input, chunk).expect("rewrites"));
            assert_eq!(seen.len(), 2);
            for block in &seen {
                assert!(block.contains(&(":authority".into(), "localhost".into())));
            }
        }
    }

    #[test]
    fn padding_priority_and_continuations_are_understood() {
        let mut encoder = loona_hpack::Encoder::new();
        let headers = request_headers("/a/b");
        let block = encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let (a, b) = block.split_at(block.len() / 2);
        let mut payload = vec![3]; // pad length
        payload.extend_from_slice(&[0x80, 0, 0, 0, 16]); // exclusive dependency on 0, weight 16
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            5,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, b));
        let out = through(&input, 3).expect("rewrites");
        let sent = frames(&out[PREFACE_LEN..]);
        assert_eq!(sent.len(), 1);
        let (kind, flags, stream, payload) = &sent[0];
        assert_eq!((*kind, *stream), (TYPE_HEADERS, 5));
        assert_eq!(*flags, FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS);
        assert_eq!(&payload[..5], &[0x80, 0, 0, 0, 16]);
        assert!(server_headers(&out)[0].contains(&(":authority".into(), "localhost".into())));
    }

    #[test]
    fn a_block_larger_than_a_frame_is_sent_as_continuations() {
        let mut headers = request_headers("/x");
        headers.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let mut block = Vec::new();
        for (n, v) in &headers {
            literal_without_indexing(n, v, &mut block);
        }
        let mut input = PREFACE.to_vec();
        let mut chunks = block.chunks(MAX_FRAME_SIZE).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let end = if chunks.peek().is_none() {
                FLAG_END_HEADERS
            } else {
                0
            };
            let kind = if first {
                TYPE_HEADERS
            } else {
                TYPE_CONTINUATION
            };
            input.extend(frame(kind, end, 1, chunk));
            first = false;
        }
        let out = through(&input, 5000).expect("rewrites");
        let sent = frames(&out[PREFACE_LEN..]);
        assert!(sent.len() >= 3);
        assert!(sent.iter().all(|f| f.3.len() <= MAX_FRAME_SIZE));
        let seen = server_headers(&out);
        assert_eq!(seen[0].last().map(|h| h.1.len()), Some(40_000));
    }

    #[test]
    fn malformed_header_traffic_ends_the_connection() {
        let lone = [
            PREFACE,
            &frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82]),
        ]
        .concat();
        assert!(matches!(
            through(&lone, 64),
            Err(RewriteError::LoneContinuation)
        ));
        let interrupted = [
            PREFACE,
            &frame(TYPE_HEADERS, 0, 1, &[0x82]),
            &frame(0x0, 0, 1, b"x"),
        ]
        .concat();
        assert!(matches!(
            through(&interrupted, 64),
            Err(RewriteError::InterruptedBlock(0))
        ));
        let bad_index = [
            PREFACE,
            &frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0x7f]),
        ]
        .concat();
        assert!(matches!(
            through(&bad_index, 64),
            Err(RewriteError::Hpack(_))
        ));
        let over_padded = [
            PREFACE,
            &frame(TYPE_HEADERS, FLAG_PADDED | FLAG_END_HEADERS, 1, &[9, 0x82]),
        ]
        .concat();
        assert!(matches!(
            through(&over_padded, 64),
            Err(RewriteError::BadPadding)
        ));
        let mut huge = PREFACE.to_vec();
        frame_header(MAX_FRAME_SIZE + 1, TYPE_HEADERS, 0, 1, &mut huge);
        assert!(matches!(
            through(&huge, 64),
            Err(RewriteError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: frame-shaped noise of every type and flag.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut input = PREFACE.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let len = (next() % 40) as usize;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let kind = [TYPE_HEADERS, TYPE_CONTINUATION, 0, 4][(next() % 4) as usize];
                input.extend(frame(kind, next() as u8, (next() % 3) as u32, &payload));
            }
            let _ = through(&input, (next() % 17 + 1) as usize);
        }
    }
}
