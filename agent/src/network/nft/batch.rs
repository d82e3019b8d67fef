//! Transactions: messages framed by `NFNL_MSG_BATCH_BEGIN`/`END` that the
//! kernel applies all or nothing, and the reading of its answers.
//!
//! Sequence numbers run `seq` (begin), `seq+1`.. (the messages), then end.
//! The kernel reports an error for every message it refused, always; only the
//! last message asks for an ACK (`NLM_F_ACK`), because the kernel answers the
//! messages of a batch in order, after it has processed them all (a failed
//! commit is reported against the begin message, before those answers): once
//! the last message is answered, every error has arrived, and a batch of
//! 10,000 messages costs one ACK instead of 10,000 in the receive buffer.

use super::error::NftError;
use super::msg::{
    put_header, Message, Reply, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
    NLM_F_ACK, NLM_F_REQUEST,
};

/// Messages to apply in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    msgs: Vec<Message>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn push(&mut self, msg: Message) -> &mut Batch {
        self.msgs.push(msg);
        self
    }

    pub fn messages(&self) -> &[Message] {
        &self.msgs
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The sequence number of the last message when the batch starts at
    /// `seq`; the end message has the next one.
    pub fn last_seq(&self, seq: u32) -> u32 {
        seq.wrapping_add(self.msgs.len() as u32)
    }

    /// The bytes of one `sendmsg`: begin, the messages, end.
    pub fn encode(&self, seq: u32) -> Result<Vec<u8>, NftError> {
        let size: usize = self.msgs.iter().map(|m| 20 + m.attrs.len()).sum();
        let mut buf = Vec::with_capacity(size + 40);
        let frame = |buf: &mut Vec<u8>, ty: u16, seq: u32| {
            put_header(buf, ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[])
        };
        frame(&mut buf, NFNL_MSG_BATCH_BEGIN, seq);
        let last = self.msgs.len().saturating_sub(1);
        for (i, m) in self.msgs.iter().enumerate() {
            let ack = if i == last { NLM_F_ACK } else { 0 };
            m.encode_into(&mut buf, seq.wrapping_add(1 + i as u32), ack)?;
        }
        frame(
            &mut buf,
            NFNL_MSG_BATCH_END,
            self.last_seq(seq).wrapping_add(1),
        );
        Ok(buf)
    }

    /// What the message with sequence number `reply_seq` did, for a batch
    /// that started at `seq`.
    pub fn describe(&self, seq: u32, reply_seq: u32) -> Option<String> {
        let i = reply_seq.wrapping_sub(seq);
        match i as usize {
            0 => Some("commit the batch".to_owned()),
            n if n <= self.msgs.len() => Some(self.msgs[n - 1].what.clone()),
            n if n == self.msgs.len() + 1 => Some("end the batch".to_owned()),
            _ => None,
        }
    }
}

/// Follows the kernel's answers to one batch (pure: fed the parsed replies).
pub struct Outcome<'b> {
    batch: &'b Batch,
    seq: u32,
    error: Option<NftError>,
    done: bool,
}

impl<'b> Outcome<'b> {
    pub fn new(batch: &'b Batch, seq: u32) -> Outcome<'b> {
        Outcome {
            batch,
            seq,
            error: None,
            done: batch.is_empty(),
        }
    }

    /// Takes one reply; replies to other requests (stale sequence numbers)
    /// are ignored.
    pub fn feed(&mut self, reply: &Reply<'_>) {
        let last = self.batch.last_seq(self.seq);
        match reply {
            Reply::Ack { seq } if *seq == last => self.done = true,
            Reply::Error { seq, errno } => {
                let Some(what) = self.batch.describe(self.seq, *seq) else {
                    return;
                };
                // The begin message is answered only when the whole batch was
                // refused or its commit failed; nothing else follows for sure.
                if *seq == last || *seq == self.seq {
                    self.done = true;
                }
                if self.error.is_none() {
                    self.error = Some(NftError::Kernel {
                        what,
                        errno: *errno,
                    });
                }
            }
            _ => {}
        }
    }

    /// Whether every answer that matters has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The first error the kernel reported, if any.
    pub fn finish(self) -> Result<(), NftError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::network::nft::expr::{
        match_ifname, match_ipv4, match_ipv4_addr, CmpOp, Expr, MetaKey, Verdict, IPV4_DADDR,
        IPV4_SADDR,
    };
    use crate::network::nft::msg::{Family, MsgType, NLM_F_APPEND, NLM_F_CREATE};
    use crate::network::nft::objects::{BaseChain, Chain, ChainType, Hook, Rule, Table};
    use api::cidr::Cidr;

    /// A captured `nft -f` sendmsg (strace `-e write=`), one hex dump line
    /// per 16 bytes.
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    struct Msg {
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
        body: Vec<u8>,
    }

    fn split(buf: &[u8]) -> Vec<Msg> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let h = &buf[pos..];
            let len = u32::from_ne_bytes(h[0..4].try_into().unwrap()) as usize;
            out.push(Msg {
                ty: u16::from_ne_bytes(h[4..6].try_into().unwrap()),
                flags: u16::from_ne_bytes(h[6..8].try_into().unwrap()),
                seq: u32::from_ne_bytes(h[8..12].try_into().unwrap()),
                family: h[16],
                res_id: u16::from_be_bytes(h[18..20].try_into().unwrap()),
                body: h[20..len].to_vec(),
            });
            pos += len;
        }
        out
    }

    /// Compares our batch with nft's, message by message. nft sends
    /// `NFTA_TABLE_FLAGS 0` and no `NLM_F_CREATE` with a new table (we send
    /// no flags attribute, so an existing table's flags stay), and asks for
    /// no ACK (we ask on the last message); everything else is identical.
    fn same_as_nft(ours: &Batch, captured: &str) {
        let mine = split(&ours.encode(0).unwrap());
        let theirs = split(&hex(captured));
        assert_eq!(mine.len(), theirs.len());
        let n = mine.len();
        for (i, (m, t)) in mine.iter().zip(&theirs).enumerate() {
            assert_eq!(m.ty, t.ty, "type of message {i}");
            assert_eq!(m.seq, t.seq, "seq of message {i}");
            assert_eq!(m.family, t.family, "family of message {i}");
            assert_eq!(m.res_id, t.res_id, "res_id of message {i}");
            if m.ty == MsgType::NewTable.nlmsg_type() {
                assert_eq!(m.flags & !NLM_F_CREATE, t.flags, "flags of message {i}");
                assert_eq!(m.body[..], t.body[..m.body.len()], "table name");
                assert_eq!(
                    t.body[m.body.len()..],
                    [8, 0, 2, 0, 0, 0, 0, 0],
                    "flags attr"
                );
                continue;
            }
            let ack = if i == n - 2 { NLM_F_ACK } else { 0 };
            assert_eq!(m.flags, t.flags | ack, "flags of message {i}");
            assert_eq!(m.body, t.body, "body of message {i}");
        }
    }

    #[test]
    fn masquerade_batch_matches_nft() {
        let t = Table::new(Family::Ip, "bt_cap").unwrap();
        let c = Chain::new(t, "postrouting").unwrap().hooked(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: 100,
            policy: None,
        });
        let rule = Rule::new(&c)
            .with(match_ipv4(
                IPV4_SADDR,
                CmpOp::Eq,
                Cidr::parse("10.244.1.0/24").unwrap(),
            ))
            .with(match_ipv4(
                IPV4_DADDR,
                CmpOp::Neq,
                Cidr::parse("10.244.0.0/16").unwrap(),
            ))
            .with([Expr::Masq]);
        let mut b = Batch::new();
        b.push(t.add())
            .push(c.add())
            .push(c.flush())
            .push(rule.add());
        same_as_nft(&b, include_str!("testdata/masquerade.hex"));
    }

    #[test]
    fn filter_batch_matches_nft() {
        let t = Table::new(Family::Ip, "bt_cap").unwrap();
        let c = Chain::new(t, "filt").unwrap().hooked(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: 0,
            policy: Some(Verdict::Drop),
        });
        let r1 = Rule::new(&c)
            .with(match_ipv4(
                IPV4_SADDR,
                CmpOp::Eq,
                Cidr::parse("10.240.0.0/12").unwrap(),
            ))
            .with(match_ifname(MetaKey::OifName, CmpOp::Eq, "bosun0"))
            .with([Expr::Verdict(Verdict::Accept)]);
        let r2 = Rule::new(&c)
            .with(match_ipv4_addr(IPV4_DADDR, "10.0.0.1".parse().unwrap()))
            .with([Expr::Verdict(Verdict::Drop)]);
        let mut b = Batch::new();
        b.push(t.add()).push(c.add()).push(r1.add()).push(r2.add());
        same_as_nft(&b, include_str!("testdata/filter.hex"));
    }

    #[test]
    fn batch_frame_and_ack_placement() {
        let t = Table::new(Family::Ip, "x").unwrap();
        let mut b = Batch::new();
        b.push(t.add()).push(t.delete());
        let m = split(&b.encode(41).unwrap());
        let seqs: Vec<_> = m.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [41, 42, 43, 44]);
        assert_eq!(m[0].ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(m[3].ty, NFNL_MSG_BATCH_END);
        assert_eq!(m[0].res_id, NFNL_SUBSYS_NFTABLES);
        assert_eq!(m[1].flags & NLM_F_ACK, 0);
        assert_eq!(m[2].flags & NLM_F_ACK, NLM_F_ACK);
        assert_eq!(m[1].flags, NLM_F_REQUEST | NLM_F_CREATE);
        let _ = NLM_F_APPEND;
    }

    fn two() -> Batch {
        let t = Table::new(Family::Ip, "bosun").unwrap();
        let mut b = Batch::new();
        b.push(t.add()).push(t.delete());
        b
    }

    #[test]
    fn error_maps_to_the_message_that_caused_it() {
        let b = two();
        let mut o = Outcome::new(&b, 10);
        o.feed(&Reply::Ack { seq: 3 }); // stale
        o.feed(&Reply::Error {
            seq: 11,
            errno: Errno::EINVAL,
        });
        assert!(!o.is_done());
        o.feed(&Reply::Ack { seq: 12 });
        assert!(o.is_done());
        let e = o.finish().unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EINVAL));
        assert!(e.to_string().contains("add table ip bosun"), "{e}");
    }

    #[test]
    fn last_message_error_and_commit_error_end_the_wait() {
        let b = two();
        let mut o = Outcome::new(&b, 10);
        o.feed(&Reply::Error {
            seq: 12,
            errno: Errno::ENOENT,
        });
        assert!(o.is_done());
        assert!(o
            .finish()
            .unwrap_err()
            .to_string()
            .contains("delete table ip bosun"));

        let mut o = Outcome::new(&b, 10);
        o.feed(&Reply::Error {
            seq: 10,
            errno: Errno::ENOMEM,
        });
        assert!(o.is_done());
        assert!(o
            .finish()
            .unwrap_err()
            .to_string()
            .contains("commit the batch"));
    }

    #[test]
    fn success_and_empty_batch() {
        let b = two();
        let mut o = Outcome::new(&b, 10);
        o.feed(&Reply::Ack { seq: 12 });
        assert!(o.is_done());
        assert!(o.finish().is_ok());
        let empty = Batch::new();
        assert!(Outcome::new(&empty, 1).is_done());
    }
}
