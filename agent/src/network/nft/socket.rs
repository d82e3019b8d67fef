//! The `NETLINK_NETFILTER` socket: sends a batch in one `send`, reads the
//! kernel's answers, asks single questions (GET). Blocking, with a receive
//! timeout so a lost answer is an error rather than a hang.
//!
//! A netlink socket belongs to the network namespace it was opened in: open
//! it on the thread that is in the namespace to program.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

use super::batch::{Batch, Outcome};
use super::error::NftError;
use super::msg::{parse_replies, Message, Reply, NLM_F_ACK};

/// How long to wait for an answer the kernel owes us. nf_tables answers
/// within the `send` itself; this only bounds the impossible.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const RECV_BUF: usize = 64 * 1024;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;

/// An open nf_tables socket in the calling thread's network namespace.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// The send buffer size set so far (0: the system default).
    sndbuf: usize,
}

impl Socket {
    pub fn open() -> Result<Socket, NftError> {
        let err = |op| move |source| NftError::Socket { op, source };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(err("open"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(err("bind"))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(err("set the receive timeout"))?;
        // Errors then carry only the header of the refused message, not the
        // whole message (which may be a large rule or set).
        let on: libc::c_int = 1;
        // SAFETY: `fd` is an open socket for the duration of the call; the
        // option value points to a live c_int whose size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Errno::result(rc).map_err(err("set NETLINK_CAP_ACK"))?;
        Ok(Socket {
            fd,
            // Distinct from any earlier socket's numbers in traces; any value works.
            seq: std::process::id().wrapping_shl(8),
            buf: vec![0; RECV_BUF],
            sndbuf: 0,
        })
    }

    /// Applies `batch` as one transaction: all of it, or none and the error
    /// of the first message the kernel refused.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), NftError> {
        if batch.is_empty() {
            return Ok(());
        }
        let seq = self.take_seq(batch.messages().len() as u32 + 2);
        let bytes = batch.encode(seq)?;
        self.fit_send_buffer(bytes.len())?;
        self.send(&bytes)?;
        let mut outcome = Outcome::new(batch, seq);
        while !outcome.is_done() {
            let n = self.recv()?;
            for r in parse_replies(&self.buf[..n])? {
                outcome.feed(&r);
            }
        }
        outcome.finish()
    }

    /// Sends one request with `NLM_F_ACK` and returns whether the kernel
    /// answered it with data (then ACK), `Ok(false)` on `ENOENT`.
    pub fn exists(&mut self, msg: &Message) -> Result<bool, NftError> {
        let seq = self.take_seq(1);
        let mut bytes = Vec::new();
        msg.encode_into(&mut bytes, seq, NLM_F_ACK)?;
        self.send(&bytes)?;
        let mut found = false;
        loop {
            let n = self.recv()?;
            for r in parse_replies(&self.buf[..n])? {
                match r {
                    Reply::Data { seq: s, .. } if s == seq => found = true,
                    Reply::Ack { seq: s } | Reply::Done { seq: s } if s == seq => return Ok(found),
                    Reply::Error { seq: s, errno } if s == seq => {
                        return match errno {
                            Errno::ENOENT => Ok(false),
                            errno => Err(NftError::Kernel {
                                what: msg.what.clone(),
                                errno,
                            }),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// A batch goes out in one `send`, which netlink refuses (`EMSGSIZE`)
    /// beyond the send buffer (≈ 200 KiB by default): grow it for large
    /// batches, past `wmem_max` (`SO_SNDBUFFORCE`, we hold CAP_NET_ADMIN
    /// anyway to talk to nf_tables).
    fn fit_send_buffer(&mut self, len: usize) -> Result<(), NftError> {
        const DEFAULT_OK: usize = 128 * 1024;
        if len <= DEFAULT_OK.max(self.sndbuf) {
            return Ok(());
        }
        let want = len.next_power_of_two();
        setsockopt(&self.fd, sockopt::SndBufForce, &want).map_err(|source| NftError::Socket {
            op: "grow the send buffer",
            source,
        })?;
        // The kernel doubles the value for its bookkeeping; `want` is usable.
        self.sndbuf = want;
        Ok(())
    }

    fn take_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        let sent = send(self.fd.as_raw_fd(), bytes, MsgFlags::empty())
            .map_err(|source| NftError::Socket { op: "send", source })?;
        if sent != bytes.len() {
            return Err(NftError::Protocol(format!(
                "sent {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<usize, NftError> {
        // MSG_TRUNC: the real length even if it did not fit, to say so.
        match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC) {
            Ok(n) if n > self.buf.len() => Err(NftError::Protocol(format!(
                "a {n}-byte reply does not fit the {}-byte buffer",
                self.buf.len()
            ))),
            Ok(n) => Ok(n),
            Err(Errno::EAGAIN) => Err(NftError::Timeout(REPLY_TIMEOUT)),
            Err(source) => Err(NftError::Socket {
                op: "receive",
                source,
            }),
        }
    }
}
