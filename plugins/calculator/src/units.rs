//! Unit conversion within one dimension: length, mass, temperature.

fn length(u: &str) -> Option<f64> {
    Some(match u {
        "m" => 1.0,
        "km" => 1000.0,
        "cm" => 0.01,
        "mm" => 0.001,
        "mi" => 1609.344,
        "yd" => 0.9144,
        "ft" => 0.3048,
        "in" => 0.0254,
        _ => return None,
    })
}

fn mass(u: &str) -> Option<f64> {
    Some(match u {
        "kg" => 1.0,
        "g" => 0.001,
        "mg" => 0.000_001,
        "lb" => 0.453_592_37,
        "oz" => 0.028_349_523_125,
        _ => return None,
    })
}

fn to_kelvin(v: f64, u: &str) -> Option<f64> {
    Some(match u {
        "k" => v,
        "c" => v + 273.15,
        "f" => (v - 32.0) * 5.0 / 9.0 + 273.15,
        _ => return None,
    })
}

fn from_kelvin(k: f64, u: &str) -> Option<f64> {
    Some(match u {
        "k" => k,
        "c" => k - 273.15,
        "f" => (k - 273.15) * 9.0 / 5.0 + 32.0,
        _ => return None,
    })
}

pub fn convert(value: f64, from: &str, to: &str) -> Result<f64, String> {
    let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
    if let (Some(a), Some(b)) = (length(&from), length(&to)) {
        return Ok(value * a / b);
    }
    if let (Some(a), Some(b)) = (mass(&from), mass(&to)) {
        return Ok(value * a / b);
    }
    if let Some(k) = to_kelvin(value, &from) {
        if let Some(v) = from_kelvin(k, &to) {
            return Ok(v);
        }
    }
    Err(format!(
        "cannot convert '{from}' to '{to}': units must be of the same kind"
    ))
}
