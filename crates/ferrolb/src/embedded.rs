//! The example manifests of `examples/`, built into the binary: the default input of
//! `ferrolb allocate` and `ferrolb check` when no directory is given.

/// `(file name, contents)` of every manifest in `examples/`, in name order.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "advertisements.yaml",
        include_str!("../../../examples/advertisements.yaml"),
    ),
    (
        "cluster.yaml",
        include_str!("../../../examples/cluster.yaml"),
    ),
    ("pools.yaml", include_str!("../../../examples/pools.yaml")),
    (
        "services.yaml",
        include_str!("../../../examples/services.yaml"),
    ),
];
