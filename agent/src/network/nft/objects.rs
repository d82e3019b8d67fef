//! nf_tables objects — tables, chains (regular and base chains with a hook)
//! and rules — and the [`Message`]s that add, flush, delete or query them.
//!
//! Adding never uses `NLM_F_EXCL`: an existing table or chain with the same
//! definition is left as it is, which is what makes a batch replayable.
//! Sets and maps (`NFT_MSG_NEWSET`/`NEWSETELEM`) belong beside these.

use super::attr::Attrs;
use super::error::{check_name, NftError};
use super::expr::{Expr, Verdict};
use super::msg::{Family, Message, MsgType, NLM_F_APPEND, NLM_F_CREATE};

const NFTA_TABLE_NAME: u16 = 1;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
/// `NFTNL_UDATA_RULE_COMMENT`: the userdata TLV `nft` shows as `comment`.
const UDATA_RULE_COMMENT: u8 = 0;

/// A table: `<family> <name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table<'a> {
    pub family: Family,
    pub name: &'a str,
}

impl<'a> Table<'a> {
    pub fn new(family: Family, name: &'a str) -> Result<Table<'a>, NftError> {
        check_name(name)?;
        Ok(Table { family, name })
    }

    /// Creates the table if missing; an existing one is left as it is (no
    /// flags are sent, so a table's flags are not changed either).
    pub fn add(&self) -> Message {
        self.message(MsgType::NewTable, NLM_F_CREATE, "add")
    }

    /// Deletes the table with everything in it (`ENOENT` when absent).
    pub fn delete(&self) -> Message {
        self.message(MsgType::DelTable, 0, "delete")
    }

    /// Asks for the table (answered by `NFT_MSG_NEWTABLE`, or `ENOENT`).
    pub fn get(&self) -> Message {
        self.message(MsgType::GetTable, 0, "get")
    }

    fn message(&self, ty: MsgType, flags: u16, verb: &str) -> Message {
        let mut attrs = Attrs::new();
        attrs.str(NFTA_TABLE_NAME, self.name);
        Message {
            ty,
            family: self.family,
            flags,
            attrs,
            what: format!("{verb} table {} {}", self.family.name(), self.name),
        }
    }
}

/// `NF_INET_*` hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hook {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// The type of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// What makes a chain a base chain: attached to a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    /// E.g. 100 (`srcnat`) for masquerading in postrouting.
    pub priority: i32,
    /// `None` leaves the kernel's default, accept.
    pub policy: Option<Verdict>,
}

/// A chain of a table; a base chain when `base` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain<'a> {
    pub table: Table<'a>,
    pub name: &'a str,
    pub base: Option<BaseChain>,
}

impl<'a> Chain<'a> {
    pub fn new(table: Table<'a>, name: &'a str) -> Result<Chain<'a>, NftError> {
        check_name(name)?;
        Ok(Chain {
            table,
            name,
            base: None,
        })
    }

    /// Makes it a base chain.
    pub fn hooked(mut self, base: BaseChain) -> Chain<'a> {
        self.base = Some(base);
        self
    }

    /// Creates the chain if missing. An existing chain is kept with its rules;
    /// the kernel refuses (`EBUSY`/`EEXIST`/`EOPNOTSUPP`) when its type or hook
    /// differ.
    pub fn add(&self) -> Message {
        let mut a = Attrs::new();
        a.str(NFTA_CHAIN_TABLE, self.table.name)
            .str(NFTA_CHAIN_NAME, self.name);
        if let Some(b) = &self.base {
            a.str(NFTA_CHAIN_TYPE, b.kind.name());
            if let Some(p) = &b.policy {
                a.be32(NFTA_CHAIN_POLICY, p.code() as u32);
            }
            a.nested(NFTA_CHAIN_HOOK, |h| {
                h.be32(NFTA_HOOK_HOOKNUM, b.hook as u32)
                    .be32(NFTA_HOOK_PRIORITY, b.priority as u32);
            });
        }
        self.message(MsgType::NewChain, NLM_F_CREATE, "add", a)
    }

    /// Removes every rule of the chain (`DELRULE` naming only table and
    /// chain); works on a chain added earlier in the same batch.
    pub fn flush(&self) -> Message {
        let mut a = Attrs::new();
        a.str(NFTA_RULE_TABLE, self.table.name)
            .str(NFTA_RULE_CHAIN, self.name);
        self.message(MsgType::DelRule, 0, "flush", a)
    }

    /// Deletes the (empty, unreferenced) chain.
    pub fn delete(&self) -> Message {
        let mut a = Attrs::new();
        a.str(NFTA_CHAIN_TABLE, self.table.name)
            .str(NFTA_CHAIN_NAME, self.name);
        self.message(MsgType::DelChain, 0, "delete", a)
    }

    fn message(&self, ty: MsgType, flags: u16, verb: &str, attrs: Attrs) -> Message {
        Message {
            ty,
            family: self.table.family,
            flags,
            attrs,
            what: format!(
                "{verb} chain {} {} {}",
                self.table.family.name(),
                self.table.name,
                self.name
            ),
        }
    }
}

/// A rule: expressions run in order in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule<'a> {
    pub chain: &'a Chain<'a>,
    pub exprs: Vec<Expr>,
    /// Shown by `nft list` as `comment "…"` (at most 254 bytes are kept).
    pub comment: Option<String>,
}

impl<'a> Rule<'a> {
    pub fn new(chain: &'a Chain<'a>) -> Rule<'a> {
        Rule {
            chain,
            exprs: Vec::new(),
            comment: None,
        }
    }

    pub fn comment(mut self, text: &str) -> Rule<'a> {
        self.comment = Some(text.to_owned());
        self
    }

    pub fn with(mut self, exprs: impl IntoIterator<Item = Expr>) -> Rule<'a> {
        self.exprs.extend(exprs);
        self
    }

    /// Appends the rule at the end of its chain.
    pub fn add(&self) -> Message {
        let c = self.chain;
        let mut a = Attrs::new();
        a.str(NFTA_RULE_TABLE, c.table.name)
            .str(NFTA_RULE_CHAIN, c.name)
            .nested(NFTA_RULE_EXPRESSIONS, |list| {
                for e in &self.exprs {
                    e.encode(list);
                }
            });
        if let Some(c) = &self.comment {
            // udata TLV: type u8, length u8 (with the NUL), the string.
            let mut end = c.len().min(254);
            while !c.is_char_boundary(end) {
                end -= 1;
            }
            let mut ud = vec![UDATA_RULE_COMMENT, end as u8 + 1];
            ud.extend_from_slice(&c.as_bytes()[..end]);
            ud.push(0);
            a.bytes(NFTA_RULE_USERDATA, &ud);
        }
        Message {
            ty: MsgType::NewRule,
            family: c.table.family,
            flags: NLM_F_CREATE | NLM_F_APPEND,
            attrs: a,
            what: format!(
                "add rule {} {} {}",
                c.table.family.name(),
                c.table.name,
                c.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_is_a_udata_tlv_like_nft() {
        let t = Table::new(Family::Ip, "bt_cap").unwrap();
        let c = Chain::new(t, "c").unwrap();
        let r = Rule::new(&c).comment("bosun egress").add();
        let body = r.attrs.encoded().unwrap();
        // The tail of `add rule ip bt_cap c counter comment "bosun egress"`.
        let want = [
            0x13, 0, 7, 0, 0, 0x0d, b'b', b'o', b's', b'u', b'n', b' ', b'e', b'g', b'r', b'e',
            b's', b's', 0, 0,
        ];
        assert_eq!(body[body.len() - want.len()..], want);
        let long = Rule::new(&c).comment(&"é".repeat(200)).add();
        let b = long.attrs.encoded().unwrap();
        assert!(b.len() < 300);
    }

    #[test]
    fn bad_names_are_refused_before_encoding() {
        assert!(Table::new(Family::Ip, "").is_err());
        let t = Table::new(Family::Ip, "bosun").unwrap();
        assert!(Chain::new(t, "a\0b").is_err());
    }

    #[test]
    fn descriptions_name_the_object() {
        let t = Table::new(Family::Ip, "bosun").unwrap();
        let c = Chain::new(t, "postrouting").unwrap();
        assert_eq!(t.add().what, "add table ip bosun");
        assert_eq!(c.flush().what, "flush chain ip bosun postrouting");
        assert_eq!(Rule::new(&c).add().what, "add rule ip bosun postrouting");
        assert_eq!(c.add().flags, NLM_F_CREATE);
        assert_eq!(Rule::new(&c).add().flags, NLM_F_CREATE | NLM_F_APPEND);
    }
}
