//! `Community` rules: every alias has a name, a valid value, and a name no other alias
//! has (across all Community resources).

use super::{Ctx, name_objects};
use crate::config::BgpCommunity;
use crate::crd::Community;
use std::collections::{BTreeMap, BTreeSet};

/// The aliases found.
pub(crate) struct Aliases {
    /// Valid aliases (the first definition of each name).
    pub values: BTreeMap<String, BgpCommunity>,
    /// Every alias name defined, valid or not: a reference to one of these is not
    /// reported again as unknown.
    pub names: BTreeSet<String>,
}

pub(crate) fn check(ctx: &mut Ctx, communities: &[Community]) -> Aliases {
    let named = name_objects(
        ctx,
        "Community",
        communities.iter().map(|c| c.metadata.name.as_deref()),
    );
    let mut aliases = Aliases {
        values: BTreeMap::new(),
        names: BTreeSet::new(),
    };
    // Alias name → where it was first defined.
    let mut defined: BTreeMap<&str, String> = BTreeMap::new();
    for (n, c) in named.iter().zip(communities) {
        for (i, alias) in c.spec.communities.iter().enumerate() {
            let at = format!("spec.communities[{i}]");
            let value = alias.value.parse::<BgpCommunity>();
            if let Err(e) = &value {
                ctx.push(n.obj.problem(
                    format!("{at}.value"),
                    format!("{:?} is not a valid community value: {e}", alias.value),
                ));
            }
            if alias.name.is_empty() {
                ctx.push(n.obj.problem(
                    format!("{at}.name"),
                    "missing alias name: give the community value a name",
                ));
                continue;
            }
            if let Some(first) = defined.get(alias.name.as_str()) {
                ctx.push(n.obj.problem(
                    format!("{at}.name"),
                    format!(
                        "alias {:?} is already defined ({first}): alias names must be unique across all Community resources",
                        alias.name
                    ),
                ));
                continue;
            }
            defined.insert(&alias.name, format!("{} {at}", n.obj.id()));
            aliases.names.insert(alias.name.clone());
            if let Ok(v) = value {
                aliases.values.insert(alias.name.clone(), v);
            }
        }
    }
    aliases
}
