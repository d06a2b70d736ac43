//! Prometheus text exposition (format 0.0.4), written directly so metric names are
//! exactly MetalLB's (a client library would append `_total` to some of them).

use std::fmt::Write;

/// The kind of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Builds one scrape's text.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family. Samples follow with [`Exposition::sample`].
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family's metric `name`, with labels.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.text, " {}", value as i64);
        } else {
            let _ = writeln!(self.text, " {value}");
        }
        self
    }

    /// The text to serve, with content type `text/plain; version=0.0.4`.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_samples_and_escapes() {
        let mut e = Exposition::default();
        e.family(
            "metallb_layer2_requests_received",
            "Number of layer2 requests received",
            Kind::Counter,
        )
        .sample(
            "metallb_layer2_requests_received",
            &[("ip", "203.0.113.1")],
            3.0,
        )
        .family("ferrolb_x", "a \\ b\nc", Kind::Gauge)
        .sample("ferrolb_x", &[("a", "q\"u\\o\nte"), ("b", "2")], 0.5)
        .sample("ferrolb_x", &[], 7.0);
        assert_eq!(
            e.finish(),
            "# HELP metallb_layer2_requests_received Number of layer2 requests received\n\
             # TYPE metallb_layer2_requests_received counter\n\
             metallb_layer2_requests_received{ip=\"203.0.113.1\"} 3\n\
             # HELP ferrolb_x a \\\\ b\\nc\n\
             # TYPE ferrolb_x gauge\n\
             ferrolb_x{a=\"q\\\"u\\\\o\\nte\",b=\"2\"} 0.5\n\
             ferrolb_x 7\n"
        );
    }
}
