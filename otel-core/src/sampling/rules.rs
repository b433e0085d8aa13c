//! A sampler that picks a ratio from the sampling-relevant attributes present at span start.

use std::borrow::Cow;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{SamplingResult, ShouldSample};

use super::{ratio_decision, result, InvalidRatio};

/// What a [`Rule`] matches on. All conditions are evaluated against what the sampler sees at span
/// start: the span name, kind and the attributes passed to the span builder.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The attribute is present and its string form equals the value.
    AttributeEquals(Key, Cow<'static, str>),
    /// The attribute is present and its string form starts with the prefix.
    AttributePrefix(Key, Cow<'static, str>),
    /// The attribute is present (any value).
    AttributePresent(Key),
    /// The span name equals the value.
    SpanName(Cow<'static, str>),
    /// The span kind equals the value.
    SpanKind(SpanKind),
    /// Every inner matcher matches.
    All(Vec<Matcher>),
    /// At least one inner matcher matches.
    Any(Vec<Matcher>),
}

fn attr<'a>(attributes: &'a [KeyValue], key: &Key) -> Option<&'a Value> {
    attributes.iter().find(|kv| &kv.key == key).map(|kv| &kv.value)
}

fn value_eq(v: &Value, s: &str) -> bool {
    match v {
        Value::String(sv) => sv.as_str() == s,
        other => other.as_str() == s,
    }
}

fn value_prefix(v: &Value, s: &str) -> bool {
    match v {
        Value::String(sv) => sv.as_str().starts_with(s),
        other => other.as_str().starts_with(s),
    }
}

impl Matcher {
    fn matches(&self, name: &str, kind: &SpanKind, attributes: &[KeyValue]) -> bool {
        match self {
            Matcher::AttributeEquals(k, v) => attr(attributes, k).is_some_and(|a| value_eq(a, v)),
            Matcher::AttributePrefix(k, p) => attr(attributes, k).is_some_and(|a| value_prefix(a, p)),
            Matcher::AttributePresent(k) => attr(attributes, k).is_some(),
            Matcher::SpanName(n) => name == n,
            Matcher::SpanKind(k) => k == kind,
            Matcher::All(ms) => ms.iter().all(|m| m.matches(name, kind, attributes)),
            Matcher::Any(ms) => ms.iter().any(|m| m.matches(name, kind, attributes)),
        }
    }
}

/// A matcher and the ratio applied when it matches.
#[derive(Clone, Debug)]
pub struct Rule {
    matcher: Matcher,
    ratio: f64,
}

impl Rule {
    /// A rule on `matcher`, sampling everything until [`Rule::ratio`] says otherwise.
    pub fn new(matcher: Matcher) -> Self {
        Self { matcher, ratio: 1.0 }
    }

    /// Matches when attribute `key` equals `value` (e.g. `url.path` = `/health`).
    pub fn attribute_equals(key: impl Into<Key>, value: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Matcher::AttributeEquals(key.into(), value.into()))
    }

    /// Matches when attribute `key` starts with `prefix`.
    pub fn attribute_prefix(key: impl Into<Key>, prefix: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Matcher::AttributePrefix(key.into(), prefix.into()))
    }

    /// Matches spans named `name`.
    pub fn span_name(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Matcher::SpanName(name.into()))
    }

    /// The fraction of matching traces to sample (`0.0` drops them all, `1.0` keeps them all).
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }
}

/// Samples by the first matching [`Rule`]'s ratio, else by the default ratio. Decisions are by
/// trace id, consistent with `TraceIdRatioBased`. Compose with `Sampler::ParentBased` so the rules
/// apply to new traces only.
#[derive(Clone, Debug)]
pub struct RuleSampler {
    rules: Vec<Rule>,
    default_ratio: f64,
}

/// Builds a [`RuleSampler`].
#[derive(Clone, Debug, Default)]
pub struct RuleSamplerBuilder {
    rules: Vec<Rule>,
    default_ratio: Option<f64>,
}

impl RuleSampler {
    /// Starts a builder; without rules and default, everything is sampled.
    pub fn builder() -> RuleSamplerBuilder {
        RuleSamplerBuilder::default()
    }
}

impl RuleSamplerBuilder {
    /// Adds a rule; rules are evaluated in the order added.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Ratio for spans that match no rule (default `1.0`).
    pub fn default_ratio(mut self, ratio: f64) -> Self {
        self.default_ratio = Some(ratio);
        self
    }

    /// Validates every ratio.
    pub fn build(self) -> Result<RuleSampler, InvalidRatio> {
        let default_ratio = self.default_ratio.unwrap_or(1.0);
        for r in self.rules.iter().map(|r| r.ratio).chain([default_ratio]) {
            if !(0.0..=1.0).contains(&r) {
                return Err(InvalidRatio(r));
            }
        }
        Ok(RuleSampler {
            rules: self.rules,
            default_ratio,
        })
    }
}

impl ShouldSample for RuleSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let ratio = self
            .rules
            .iter()
            .find(|r| r.matcher.matches(name, span_kind, attributes))
            .map_or(self.default_ratio, |r| r.ratio);
        result(ratio_decision(ratio, trace_id), parent_context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SamplingDecision, SdkTracerProvider};

    fn decide(s: &RuleSampler, name: &str, attrs: &[KeyValue], id: u128) -> SamplingDecision {
        s.should_sample(None, TraceId::from(id), name, &SpanKind::Server, attrs, &[])
            .decision
    }

    fn sampler() -> RuleSampler {
        RuleSampler::builder()
            .rule(Rule::attribute_equals("url.path", "/health").ratio(0.0))
            .rule(Rule::attribute_equals("http.route", "/checkout").ratio(1.0))
            .rule(Rule::attribute_prefix("url.path", "/static/").ratio(0.0))
            .rule(Rule::new(Matcher::All(vec![
                Matcher::SpanKind(SpanKind::Server),
                Matcher::SpanName("GET /slow".into()),
            ])))
            .default_ratio(0.0)
            .build()
            .unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let s = sampler();
        for id in 1..200u128 {
            let id = id * 0x0123_4567_89ab_cdef_0123_4567_89ab;
            assert_eq!(
                decide(&s, "GET", &[KeyValue::new("url.path", "/health")], id),
                SamplingDecision::Drop
            );
            assert_eq!(
                decide(
                    &s,
                    "POST /checkout",
                    &[
                        KeyValue::new("http.route", "/checkout"),
                        KeyValue::new("url.path", "/checkout")
                    ],
                    id
                ),
                SamplingDecision::RecordAndSample
            );
            assert_eq!(
                decide(&s, "GET", &[KeyValue::new("url.path", "/static/app.js")], id),
                SamplingDecision::Drop
            );
            assert_eq!(decide(&s, "GET /slow", &[], id), SamplingDecision::RecordAndSample);
            assert_eq!(
                decide(&s, "GET /other", &[KeyValue::new("url.path", "/other")], id),
                SamplingDecision::Drop,
                "no rule: default ratio 0"
            );
        }
    }

    #[test]
    fn non_string_attributes_match_by_string_form() {
        let s = RuleSampler::builder()
            .rule(Rule::attribute_equals("http.response.status_code", "200").ratio(0.0))
            .build()
            .unwrap();
        assert_eq!(
            decide(&s, "x", &[KeyValue::new("http.response.status_code", 200i64)], 7),
            SamplingDecision::Drop
        );
        assert_eq!(decide(&s, "x", &[], 7), SamplingDecision::RecordAndSample);
    }

    #[test]
    fn invalid_ratios_fail_the_build() {
        assert!(RuleSampler::builder()
            .rule(Rule::span_name("x").ratio(2.0))
            .build()
            .is_err());
        assert!(RuleSampler::builder().default_ratio(-1.0).build().is_err());
    }

    #[test]
    fn works_inside_parent_based_with_start_attributes() {
        let exp = InMemorySpanExporter::default();
        let tp = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(sampler())))
            .with_simple_exporter(exp.clone())
            .build();
        let tracer = tp.tracer("t");
        let health = tracer
            .span_builder("GET")
            .with_attributes([KeyValue::new("url.path", "/health")])
            .start(&tracer);
        assert!(!health.span_context().is_sampled());
        let checkout = tracer
            .span_builder("POST /checkout")
            .with_attributes([KeyValue::new("http.route", "/checkout")])
            .start(&tracer);
        assert!(checkout.span_context().is_sampled());
        // A child of a sampled parent is sampled even though its own attributes match a drop rule.
        let cx = Context::new().with_span(checkout);
        let child = tracer
            .span_builder("GET")
            .with_attributes([KeyValue::new("url.path", "/health")])
            .start_with_context(&tracer, &cx);
        assert!(child.span_context().is_sampled());
    }
}
