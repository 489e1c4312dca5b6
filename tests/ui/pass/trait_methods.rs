//! Trait methods: implementations, default methods, `async fn` in traits (implemented and
//! default), generic traits, and `impl Trait` returned from a trait method.

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

trait Invoices {
    fn send(&self, id: u64) -> Result<(), Error>;

    #[audited(action = "invoice.delete", resource = "invoice", id = id)]
    fn delete(&mut self, id: u64) -> Result<u64, Error> {
        self.forget(id);
        Ok(id)
    }

    fn forget(&mut self, id: u64);

    async fn load(&self, id: u64) -> Result<String, Error>;

    #[audited(action = "customer_record.read", resource = "invoice", id = id)]
    async fn load_twice(&self, id: u64) -> Result<String, Error> {
        let first = self.load(id).await?;
        Ok(format!("{first}{first}"))
    }

    fn ids(&self) -> impl Iterator<Item = u64>;
}

trait Repository<T> {
    fn find(&self, id: u64) -> Option<T>;
}

#[derive(Default)]
pub struct Store {
    ids: Vec<u64>,
}

impl Invoices for Store {
    #[audited(action = "invoice.send", resource = "invoice", id = id)]
    fn send(&self, id: u64) -> Result<(), Error> {
        if self.ids.contains(&id) { Ok(()) } else { Err(Error) }
    }

    fn forget(&mut self, id: u64) {
        self.ids.retain(|i| *i != id);
    }

    #[audited(action = "customer_record.read", resource = "invoice", id = id)]
    async fn load(&self, id: u64) -> Result<String, Error> {
        tokio::task::yield_now().await;
        Ok(id.to_string())
    }

    #[audited(action = "report.generate")]
    fn ids(&self) -> impl Iterator<Item = u64> {
        self.ids.clone().into_iter()
    }
}

impl Repository<String> for Store {
    #[audited(action = "customer_record.read", resource = "invoice", id = id)]
    fn find(&self, id: u64) -> Option<String> {
        self.ids.contains(&id).then(|| id.to_string())
    }
}

fn main() {
    let ((), count) = sink::with_sink(|| {
        let mut store = Store { ids: vec![1, 2, 3] };
        store.send(1).unwrap();
        assert!(store.send(9).is_err());
        assert_eq!(store.delete(1).unwrap(), 1);
        assert_eq!(store.ids().count(), 2);
        assert_eq!(store.find(2).as_deref(), Some("2"));
    });
    assert_eq!(count, 5);

    let (text, count) = sink::block_on(async { Store::default().load_twice(4).await.unwrap() });
    assert_eq!(text, "44");
    assert_eq!(count, 2);
}
