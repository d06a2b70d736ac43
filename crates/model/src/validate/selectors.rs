//! Lists of label selectors: each must be valid, and none may repeat another.

use super::{Ctx, Obj};
use crate::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Checks a list of selectors at `field` (`spec.nodeSelectors`) and returns the valid
/// ones, in order. Reports: a selector Kubernetes would refuse; a match expression
/// repeated within one selector; a selector equal (same requirements, whatever their
/// order) to an earlier one of the list.
pub(crate) fn check_selectors(
    ctx: &mut Ctx,
    obj: &Obj,
    field: &str,
    selectors: &[LabelSelector],
) -> Vec<Selector> {
    let mut parsed: Vec<(usize, Selector)> = Vec::new();
    for (i, sel) in selectors.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(sel) = check_selector(ctx, obj, &at, sel) {
            let text = sel.to_string();
            if let Some((j, _)) = parsed.iter().find(|(_, s)| s.to_string() == text) {
                ctx.push(obj.problem(
                    at,
                    format!(
                        "selector {} is listed twice (also {field}[{j}]): remove one",
                        describe(&sel)
                    ),
                ));
            }
            parsed.push((i, sel));
        }
    }
    parsed.into_iter().map(|(_, s)| s).collect()
}

/// Checks one selector at `at`; `None` (after reporting) when it is invalid.
pub(crate) fn check_selector(
    ctx: &mut Ctx,
    obj: &Obj,
    at: &str,
    sel: &LabelSelector,
) -> Option<Selector> {
    let exprs = sel.match_expressions.as_deref().unwrap_or_default();
    let mut ok = true;
    for (i, e) in exprs.iter().enumerate() {
        let key = |e: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement| {
            let mut values = e.values.clone().unwrap_or_default();
            values.sort();
            (e.key.clone(), e.operator.clone(), values)
        };
        let this = key(e);
        if let Some(j) = exprs[..i].iter().position(|other| key(other) == this) {
            ctx.push(obj.problem(
                format!("{at}.matchExpressions[{i}]"),
                format!("repeats matchExpressions[{j}]: remove one"),
            ));
            ok = false;
        }
    }
    match Selector::parse(sel) {
        Ok(s) => ok.then_some(s),
        Err(e) => {
            ctx.push(obj.problem(at, format!("invalid label selector: {e}")));
            None
        }
    }
}

/// A selector as users read it.
pub(crate) fn describe(sel: &Selector) -> String {
    if sel.is_everything() {
        "{} (every object)".to_string()
    } else {
        format!("{:?}", sel.to_string())
    }
}
