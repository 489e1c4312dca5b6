//! Async fns: their futures stay `Send` when the body's is.

use audit::audited;

#[path = "sink/mod.rs"]
mod sink;

#[derive(Debug)]
pub struct Error;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

#[audited(action = "customer_record.read", resource = "customer", id = id)]
async fn read(id: &str) -> Result<String, Error> {
    tokio::task::yield_now().await;
    if id.is_empty() {
        return Err(Error);
    }
    Ok(format!("record {id}"))
}

#[audited(action = "report.generate")]
async fn unit() {
    tokio::task::yield_now().await;
}

#[audited(action = "report.generate")]
async fn generic<T: std::fmt::Debug + Send>(items: Vec<T>) -> usize {
    tokio::task::yield_now().await;
    items.len()
}

#[audited(action = "report.generate")]
async fn opaque(n: u32) -> impl std::fmt::Display {
    n * 2
}

#[audited(action = "customer.create", resource = "customer", id = return)]
async fn create(name: String) -> Result<u64, Error> {
    let _ = name;
    Ok(42)
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let fut = read("cust_1");
    assert_send(&fut);
    assert_send(&unit());
    assert_send(&generic(vec![1]));
    let (n, count) = sink::block_on(async {
        assert_eq!(fut.await.unwrap(), "record cust_1");
        assert!(read("").await.is_err());
        unit().await;
        assert_eq!(opaque(2).await.to_string(), "4");
        assert_eq!(create("Ada".into()).await.unwrap(), 42);
        generic(vec!["a", "b"]).await
    });
    assert_eq!(n, 2);
    assert_eq!(count, 6);
}
