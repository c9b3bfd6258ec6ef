//! Prints, as JSON, what the browser page must show for the same requests: the browser test's
//! native expectation, computed by the native build of the same library.
//!
//! ```text
//! cargo run --release -p nanotensor-web --example expect -- matmul '[{"backend":"naive","m":64,...}]'
//! cargo run --release -p nanotensor-web --example expect -- attention '[{...}]'
//! ```
//! Each request is the JSON the page sends to its worker; the output is a JSON array with one
//! entry per request: `{"ok": report}` or `{"err": message}`.

use nanotensor_web::kernels::{run_attention, run_matmul, AttentionRequest, MatmulRequest};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, requests] = args.as_slice() else {
        eprintln!("usage: expect matmul|attention '<JSON array of requests>'");
        std::process::exit(2);
    };
    let out = match op.as_str() {
        "matmul" => each::<MatmulRequest, _>(requests, |r| run_matmul(r).map(|x| json!(x))),
        "attention" => {
            each::<AttentionRequest, _>(requests, |r| run_attention(r).map(|x| json!(x)))
        }
        other => Err(format!("unknown op `{other}` (matmul, attention)")),
    };
    match out {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("expect: {e}");
            std::process::exit(2);
        }
    }
}

fn each<R, F>(requests: &str, run: F) -> Result<Value, String>
where
    R: serde::de::DeserializeOwned,
    F: Fn(&R) -> nanotensor::Result<Value>,
{
    let reqs: Vec<R> = serde_json::from_str(requests).map_err(|e| format!("bad requests: {e}"))?;
    Ok(Value::Array(
        reqs.iter()
            .map(|r| match run(r) {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "err": e.to_string() }),
            })
            .collect(),
    ))
}
