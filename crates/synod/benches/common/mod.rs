//! Shared by the `synod` benches: reading `synod demo --json` output.

/// The demo's `phases_ms` in the order it printed them (a JSON object, which
/// `serde_json::Value` would sort by name); `None` if `json` has no such map.
pub fn ordered_phases(json: &[u8]) -> Option<Vec<(String, f64)>> {
    #[derive(serde::Deserialize)]
    struct Report {
        phases_ms: InOrder,
    }
    struct InOrder(Vec<(String, f64)>);
    impl<'de> serde::Deserialize<'de> for InOrder {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = InOrder;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map of phase names to milliseconds")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<InOrder, A::Error> {
                    let mut v = Vec::new();
                    while let Some(e) = m.next_entry()? {
                        v.push(e);
                    }
                    Ok(InOrder(v))
                }
            }
            d.deserialize_map(V)
        }
    }
    let mut reports = serde_json::Deserializer::from_slice(json).into_iter::<Report>();
    match reports.next() {
        Some(Ok(r)) => Some(r.phases_ms.0),
        _ => None,
    }
}
