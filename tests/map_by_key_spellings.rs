//! `map_by_key_jsonl_file` with thousands of keys, each written several ways (`7`, `7.0`,
//! `7e0`; `"s7"`, `"\u0073" "7"`), and CRLF line ends: enough keys to grow its table of key
//! spellings past its first size. A torn resume and a rewrite still give the same bytes, and
//! no key is computed twice.

mod common;
use abstractions::jsonl::{Options, map_by_key_jsonl_file};
use common::on_all_runtimes;
use serde_json::{Map, Value, json};
use std::io;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

type Row = Map<String, Value>;

fn f(
    calls: Arc<AtomicUsize>,
) -> impl FnMut(Row) -> futures::future::BoxFuture<'static, io::Result<Value>> {
    move |row: Row| {
        calls.fetch_add(1, Ordering::SeqCst);
        let k = row["key"].to_string();
        Box::pin(async move { Ok(json!({"r": k, "n": 1})) })
    }
}

/// Many keys (beyond the spelling table's first growth), several spellings per key.
#[test]
fn many_keys_many_spellings_resume_byte_identical() {
    on_all_runtimes(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s.jsonl"), dir.path().join("d.jsonl"));
        let mut text = String::new();
        for i in 0..12_000u64 {
            let k = (i * 7919) % 3000;
            let key = match (i / 3000 + k) % 5 {
                0 => format!("{k}"),
                1 => format!("{k}.0"),
                2 => format!("\"s{k}\""),
                3 => format!("\"\\u0073{k}\""),
                _ => format!("{k}e0"),
            };
            text.push_str(&format!(
                "{{\"key\":{key},\"other\":{i},\"drop\":\"x\"}}\r\n"
            ));
        }
        std::fs::write(&src, &text).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let run = || {
            map_by_key_jsonl_file(
                &src,
                &dst,
                f(calls.clone()),
                "key",
                4,
                &["other"],
                Options::new(),
            )
        };
        run().await.unwrap();
        let first = calls.load(Ordering::SeqCst);
        assert!(first > 3000, "{first}");
        let full = std::fs::read(&dst).unwrap();
        let lines: Vec<&[u8]> = full.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 12_000);
        // Torn tail.
        let half: usize = lines[..6000].iter().map(|l| l.len()).sum();
        std::fs::write(&dst, &full[..half + 7]).unwrap();
        let r = run().await.unwrap();
        assert_eq!((r.torn_bytes, r.rows_resumed, r.calls), (7, 6000, 0));
        assert_eq!(std::fs::read(&dst).unwrap(), full);
        // A hole: rewrite.
        let mut holed = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i != 100 && i < 9000 {
                holed.extend_from_slice(l);
            }
        }
        std::fs::write(&dst, &holed).unwrap();
        let r = run().await.unwrap();
        assert_eq!(r.calls, 0);
        assert_eq!(std::fs::read(&dst).unwrap(), full);
        assert_eq!(calls.load(Ordering::SeqCst), first);
    });
}
