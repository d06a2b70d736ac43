//! A configuration reference in Markdown, generated from the CRD schemas (so it cannot
//! drift from what the API server and `ferrolb check` accept). `docs/reference.md` is a
//! checked-in copy that a test keeps identical.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray,
};
use std::fmt::Write;

/// The reference page: one section per kind, one table row per field.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the resource types by `ferrolb crds` machinery; do not edit by hand\n\
         (regenerate with `FERROLB_BLESS=1 cargo test -p ferrolb-model --test crds`).\n\
         Every kind is in group `metallb.io` and is namespaced. Types and ranges are those the\n\
         CRDs enforce; `ferrolb check` enforces the rest (see the validation rules in the\n\
         model crate).\n",
    );
    for crd in super::all_crds() {
        let names = &crd.spec.names;
        let _ = write!(out, "\n## {}\n\n", names.kind);
        let versions: Vec<String> = crd
            .spec
            .versions
            .iter()
            .map(|v| {
                let mut s = format!("`{}/{}`", crd.spec.group, v.name);
                if v.storage {
                    s += " (stored)";
                }
                if v.deprecated == Some(true) {
                    s += " (deprecated, read and converted)";
                }
                s
            })
            .collect();
        let _ = writeln!(
            out,
            "Versions: {}. Plural: `{}`.\n",
            versions.join(", "),
            names.plural
        );
        let Some(version) = crd.spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        if let Some(d) = &schema.description {
            let _ = writeln!(out, "{}\n", first_paragraph(d));
        }
        let mut rows = Vec::new();
        for part in ["spec", "status"] {
            if let Some(p) = schema.properties.as_ref().and_then(|p| p.get(part)) {
                walk(part, p, &mut rows);
            }
        }
        if rows.is_empty() {
            out += "No fields.\n";
            continue;
        }
        out += "| field | type | default | description |\n|---|---|---|---|\n";
        for (path, ty, default, desc) in rows {
            let _ = writeln!(out, "| `{path}` | {ty} | {default} | {} |", cell(&desc));
        }
    }
    out
}

/// Appends a row per field under `path`, depth first, in name order.
fn walk(path: &str, p: &JSONSchemaProps, rows: &mut Vec<(String, String, String, String)>) {
    for (name, child) in p.properties.iter().flatten() {
        let here = format!("{path}.{name}");
        let default = child
            .default
            .as_ref()
            .map(|d| format!("`{}`", d.0))
            .unwrap_or_else(|| "".into());
        rows.push((
            here.clone(),
            type_of(child),
            default,
            child.description.clone().unwrap_or_default(),
        ));
        if is_leafish(child) {
            continue;
        }
        if child.properties.is_some() {
            walk(&here, child, rows);
        } else if let Some(JSONSchemaPropsOrArray::Schema(item)) = &child.items
            && item.properties.is_some()
            && !is_leafish(item)
        {
            walk(&format!("{here}[]"), item, rows);
        }
    }
}

/// Label selectors and conditions are standard Kubernetes types: named, not expanded.
fn is_leafish(p: &JSONSchemaProps) -> bool {
    let has = |k: &str| p.properties.as_ref().is_some_and(|m| m.contains_key(k));
    let item_has = |k: &str| match &p.items {
        Some(JSONSchemaPropsOrArray::Schema(i)) => {
            i.properties.as_ref().is_some_and(|m| m.contains_key(k))
        }
        _ => false,
    };
    has("matchLabels")
        || has("lastTransitionTime")
        || item_has("matchLabels")
        || item_has("lastTransitionTime")
}

fn type_of(p: &JSONSchemaProps) -> String {
    let props =
        |p: &JSONSchemaProps, k: &str| p.properties.as_ref().is_some_and(|m| m.contains_key(k));
    let base = match p.type_.as_deref() {
        Some("array") => match &p.items {
            Some(JSONSchemaPropsOrArray::Schema(i)) if props(i, "matchLabels") => {
                "list of label selectors".to_string()
            }
            Some(JSONSchemaPropsOrArray::Schema(i)) if props(i, "lastTransitionTime") => {
                "list of conditions".to_string()
            }
            Some(JSONSchemaPropsOrArray::Schema(i)) => format!("list of {}", type_of(i)),
            _ => "list".to_string(),
        },
        Some("object") if props(p, "matchLabels") => "label selector".to_string(),
        Some("object") => "object".to_string(),
        Some("integer") => "integer".to_string(),
        Some(t) => t.to_string(),
        None if p.enum_.is_some() => "string".to_string(),
        None => "any".to_string(),
    };
    let mut s = base;
    if let Some(values) = &p.enum_ {
        let v: Vec<String> = values
            .iter()
            .map(|j| j.0.to_string().trim_matches('"').to_string())
            .collect();
        let _ = write!(s, ": {}", v.join(", "));
    }
    match (p.minimum, p.maximum) {
        (Some(lo), Some(hi)) => {
            let _ = write!(s, " ({lo}-{hi})");
        }
        (Some(lo), None) => {
            let _ = write!(s, " (≥ {lo})");
        }
        (None, Some(hi)) => {
            let _ = write!(s, " (≤ {hi})");
        }
        _ => {}
    }
    s
}

fn first_paragraph(s: &str) -> String {
    s.split("\n\n").next().unwrap_or("").replace('\n', " ")
}

fn cell(s: &str) -> String {
    first_paragraph(s).replace('|', "\\|")
}
