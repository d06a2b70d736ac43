//! Validation: every rule MetalLB's parser and webhooks enforce, reported as [`Problem`]s
//! that name kind/name/field.
//!
//! [`validate`] checks each kind in turn (BFD profiles and communities first, as peers
//! and advertisements refer to them; then pools, peers and advertisements), then the
//! rules that span kinds, and returns every problem found, sorted.

pub mod address;
mod advertisements;
mod bfd;
mod communities;
pub mod duration;
mod peers;
mod pools;
mod selectors;

use crate::{Config, Problem, Snapshot};
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub use address::{parse_pool_address, summarize_range};
pub use duration::parse_go_duration;

/// Checks every resource of the snapshot. Returns the configuration when no rule is
/// broken, else every problem found (not only the first), sorted by object, field and
/// message (numbers in indices compare as numbers), without repetitions.
///
/// Transient problems (a referenced Secret, BFD profile or community alias that does
/// not exist yet) are problems too: the caller decides whether to retry.
pub fn validate(snapshot: &Snapshot) -> Result<Config, Vec<Problem>> {
    let mut ctx = Ctx::default();
    let bfd_profiles = bfd::check(&mut ctx, &snapshot.bfd_profiles);
    let communities = communities::check(&mut ctx, &snapshot.communities);
    let pools = pools::check(&mut ctx, &snapshot.pools, &snapshot.nodes);
    let peers = peers::check(&mut ctx, snapshot, &bfd_profiles);
    let l2_advertisements = advertisements::check_l2(&mut ctx, &snapshot.l2_advertisements, &pools);
    let bgp_advertisements = advertisements::check_bgp(
        &mut ctx,
        snapshot,
        &pools,
        &communities,
        &peers,
        &bfd_profiles,
    );
    if !ctx.problems.is_empty() {
        let mut problems = ctx.problems;
        problems.sort_by(compare_problems);
        problems.dedup();
        return Err(problems);
    }
    Ok(Config {
        pools: pools
            .into_iter()
            .filter(|p| p.first)
            .map(|p| (p.pool.name.clone(), p.pool))
            .collect(),
        l2_advertisements,
        bgp_advertisements,
        peers,
        bfd_profiles,
        communities: communities.values,
    })
}

/// Where problems are collected.
#[derive(Default)]
pub(crate) struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }
}

/// One object being checked: its kind and the name problems use.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    kind: &'static str,
    name: String,
}

impl Obj {
    /// A problem with a field of this object.
    fn problem(&self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(self.kind, &self.name, field, message)
    }

    /// `Kind/name`, to mention this object in another's problem.
    fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// The objects of one kind, named: a missing name becomes `(unnamed #N)` (N counting
/// from 1 in snapshot order) and is reported, and so is a name an earlier object of the
/// kind already has. `first` tells the objects whose name is seen for the first time:
/// only those enter the configuration and can be referred to.
pub(crate) struct Named {
    obj: Obj,
    first: bool,
}

fn name_objects<'a>(
    ctx: &mut Ctx,
    kind: &'static str,
    names: impl Iterator<Item = Option<&'a str>>,
) -> Vec<Named> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, name) in names.enumerate() {
        let obj = match name.filter(|n| !n.is_empty()) {
            Some(n) => Obj {
                kind,
                name: n.to_string(),
            },
            None => {
                let obj = Obj {
                    kind,
                    name: format!("(unnamed #{})", i + 1),
                };
                ctx.push(obj.problem(
                    "metadata.name",
                    format!("missing name: every {kind} needs a name"),
                ));
                out.push(Named { obj, first: false });
                continue;
            }
        };
        let first = match seen.get(&obj.name) {
            Some(earlier) => {
                ctx.push(obj.problem(
                    "metadata.name",
                    format!(
                        "duplicate name: {kind} #{} has the same name as #{}; names must be unique within a kind",
                        i + 1,
                        earlier + 1
                    ),
                ));
                false
            }
            None => {
                seen.insert(obj.name.clone(), i);
                true
            }
        };
        out.push(Named { obj, first });
    }
    out
}

/// Reports every entry of a list of strings equal to an earlier one.
fn check_duplicate_strings(ctx: &mut Ctx, obj: &Obj, field: &str, items: &[String], what: &str) {
    for (i, item) in items.iter().enumerate() {
        if let Some(j) = items[..i].iter().position(|e| e == item) {
            ctx.push(obj.problem(
                format!("{field}[{i}]"),
                format!("{what} {item:?} is listed twice (also {field}[{j}]): remove one"),
            ));
        }
    }
}

/// Orders problems by object, field and message, comparing runs of digits as numbers so
/// `addresses[2]` comes before `addresses[10]`.
fn compare_problems(a: &Problem, b: &Problem) -> Ordering {
    natural(&a.object, &b.object)
        .then_with(|| natural(&a.field, &b.field))
        .then_with(|| a.message.cmp(&b.message))
        .then_with(|| a.transient.cmp(&b.transient))
        // `a01` and `a1` compare equal above; keep the order total anyway.
        .then_with(|| a.cmp(b))
}

fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, ra) = a.split_at(da);
                let (nb, rb) = b.split_at(db);
                let na = trim_zeros(na);
                let nb = trim_zeros(nb);
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|c| **c == b'0').count();
    &digits[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["a[10]", "a[2]", "a[1]", "b", "a", "a[02]x", "a[2]y"];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["a", "a[1]", "a[2]", "a[02]x", "a[2]y", "a[10]", "b"]);
    }
}
