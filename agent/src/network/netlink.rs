//! A blocking NETLINK_ROUTE socket: one request at a time, answered by an ack,
//! one message or a dump. A socket stays bound to the network namespace it was
//! made in, so [`Netlink::open_in`] makes one inside a pod's namespace on a
//! short-lived thread and hands it back. The messages themselves are
//! netlink-packet-route's; nothing here knows about links or routes.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Room for one datagram of a dump (the kernel sizes them to what we read).
const RECV_BUF: usize = 64 * 1024;

/// A NETLINK_ROUTE socket with its sequence counter and receive buffer.
pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// A socket inside the network namespace `netns` (an open nsfs file): a
    /// scoped thread joins the namespace, opens the socket and exits, so the
    /// calling thread never changes namespace.
    pub(crate) fn open_in(netns: &File) -> io::Result<Netlink> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                Netlink::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        })
    }

    /// Sends `msg` asking for an ack; the kernel's error, if any, as an
    /// `io::Error` carrying its errno.
    pub(crate) fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        let mut acked = false;
        self.receive(seq, |payload| match payload {
            NetlinkPayload::Error(e) => {
                acked = true;
                match e.code {
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    None => Ok(true),
                }
            }
            _ => Ok(false),
        })?;
        if acked {
            Ok(())
        } else {
            Err(io::Error::other("netlink request got no ack"))
        }
    }

    /// Sends a get request for one object (e.g. a link by name) and returns the
    /// answer.
    pub(crate) fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        let seq = self.send(msg, NLM_F_REQUEST)?;
        let mut answer = None;
        self.receive(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                answer = Some(m);
                Ok(true)
            }
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                None => Ok(true),
            },
            _ => Ok(false),
        })?;
        answer.ok_or_else(|| io::Error::other("netlink get got no answer"))
    }

    /// Sends a dump request and collects every message of the answer.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        self.receive(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                out.push(m);
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                None => Ok(true),
            },
            _ => Ok(false),
        })?;
        Ok(out)
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads datagrams and hands each message of sequence `seq` to `each`
    /// until it says the answer is complete. Messages of other sequences
    /// (answers to an earlier, abandoned request) are skipped.
    fn receive(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> io::Result<bool>,
    ) -> io::Result<()> {
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            if n > self.buf.len() {
                return Err(io::Error::other("netlink answer larger than the buffer"));
            }
            let mut offset = 0;
            let mut done = false;
            while offset < self.buf.len() {
                let rest = &self.buf[offset..];
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
                    .length() as usize;
                if len == 0 || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink message length out of bounds",
                    ));
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                if each(msg.payload)? {
                    done = true;
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// Whether `err` carries errno `errno` (from the kernel's answer).
pub(crate) fn is_errno(err: &io::Error, errno: i32) -> bool {
    err.raw_os_error() == Some(errno)
}
