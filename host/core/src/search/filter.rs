//! Attribute filters of `filters` in searches and file_search tools.

use serde_json::Value;

/// A filter that does not parse: the path of the offending part (`filters.filters[1].key`)
/// and what is wrong with it, in the words the API answers with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub param: String,
    pub message: String,
}

fn invalid(param: String, message: String) -> FilterError {
    FilterError { param, message }
}

/// An attribute filter: a comparison or an and/or of filters.
#[derive(Debug, Clone)]
pub enum Filter {
    Compare { op: Op, key: String, value: Value },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
}

impl Filter {
    /// Parses and validates a filter; errors name the offending path.
    pub fn parse(param: &str, v: &Value) -> Result<Filter, FilterError> {
        let kind = v.get("type").and_then(Value::as_str).ok_or_else(|| {
            invalid(
                format!("{param}.type"),
                format!("Missing required parameter: '{param}.type'."),
            )
        })?;
        match kind {
            "and" | "or" => {
                let list = v.get("filters").and_then(Value::as_array).ok_or_else(|| {
                    invalid(
                        format!("{param}.filters"),
                        format!("Invalid '{param}.filters': expected an array."),
                    )
                })?;
                let parsed = list
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Filter::parse(&format!("{param}.filters[{i}]"), f))
                    .collect::<Result<Vec<_>, FilterError>>()?;
                Ok(if kind == "and" {
                    Filter::And(parsed)
                } else {
                    Filter::Or(parsed)
                })
            }
            op => {
                let op = match op {
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "gt" => Op::Gt,
                    "gte" => Op::Gte,
                    "lt" => Op::Lt,
                    "lte" => Op::Lte,
                    "in" => Op::In,
                    "nin" => Op::Nin,
                    other => {
                        return Err(invalid(
                            format!("{param}.type"),
                            format!("Invalid '{param}.type': '{other}'. Expected eq, ne, gt, gte, lt, lte, in, nin, and or or."),
                        ))
                    }
                };
                let key = v.get("key").and_then(Value::as_str).ok_or_else(|| {
                    invalid(
                        format!("{param}.key"),
                        format!("Missing required parameter: '{param}.key'."),
                    )
                })?;
                let value = v
                    .get("value")
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| {
                        invalid(
                            format!("{param}.value"),
                            format!("Missing required parameter: '{param}.value'."),
                        )
                    })?;
                let list_op = matches!(op, Op::In | Op::Nin);
                if list_op != value.is_array() || value.is_object() {
                    return Err(invalid(
                        format!("{param}.value"),
                        format!("Invalid '{param}.value': 'in'/'nin' take an array, other comparisons a string, number or boolean."),
                    ));
                }
                Ok(Filter::Compare {
                    op,
                    key: key.to_string(),
                    value,
                })
            }
        }
    }

    /// Whether a file with these attributes passes. A missing key fails every comparison but `ne`/`nin`.
    pub fn matches(&self, attrs: Option<&Value>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(attrs)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(attrs)),
            Filter::Compare { op, key, value } => {
                let actual = attrs.and_then(|a| a.get(key));
                match op {
                    Op::Eq => actual.is_some_and(|a| same(a, value)),
                    Op::Ne => !actual.is_some_and(|a| same(a, value)),
                    Op::In => actual.is_some_and(|a| {
                        value
                            .as_array()
                            .is_some_and(|l| l.iter().any(|v| same(a, v)))
                    }),
                    Op::Nin => !actual.is_some_and(|a| {
                        value
                            .as_array()
                            .is_some_and(|l| l.iter().any(|v| same(a, v)))
                    }),
                    Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                        let Some(ord) = actual.and_then(|a| order(a, value)) else {
                            return false;
                        };
                        match op {
                            Op::Gt => ord.is_gt(),
                            Op::Gte => ord.is_ge(),
                            Op::Lt => ord.is_lt(),
                            _ => ord.is_le(),
                        }
                    }
                }
            }
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_compare_and_combine() {
        let f = Filter::parse(
            "filters",
            &json!({"type": "and", "filters": [
                {"type": "eq", "key": "lang", "value": "en"},
                {"type": "lt", "key": "year", "value": 2021}
            ]}),
        )
        .unwrap();
        assert!(f.matches(Some(&json!({"lang": "en", "year": 2020}))));
        assert!(!f.matches(Some(&json!({"lang": "en", "year": 2022}))));
        assert!(!f.matches(None));
        let nin = Filter::parse(
            "filters",
            &json!({"type": "nin", "key": "lang", "value": ["de"]}),
        )
        .unwrap();
        assert!(nin.matches(Some(&json!({"lang": "en"}))));
        assert!(
            Filter::parse("filters", &json!({"type": "eq", "key": "k", "value": [1]})).is_err()
        );
        assert!(
            Filter::parse("filters", &json!({"type": "like", "key": "k", "value": 1})).is_err()
        );
    }
}
