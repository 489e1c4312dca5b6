//! Inherent methods: `&self`, `&mut self`, `self`, `self: Box<Self>`, no receiver, generic
//! impls, and references into `self` returned.

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

pub struct Account {
    id: String,
    balance: i64,
}

impl Account {
    #[audited(action = "customer.create", resource = "customer", id = return.id)]
    fn open(id: &str) -> Self {
        Account {
            id: id.to_owned(),
            balance: 0,
        }
    }

    #[audited(action = "customer_record.read", resource = "customer", id = self.id)]
    fn id(&self) -> &str {
        &self.id
    }

    #[audited(action = "billing.update", resource = "customer", id = self.id, context(amount = amount))]
    fn deposit(&mut self, amount: i64) -> Result<&mut i64, Error> {
        if amount <= 0 {
            return Err(Error);
        }
        self.balance += amount;
        Ok(&mut self.balance)
    }

    #[audited(action = "customer.delete", resource = "customer", id = self.id)]
    fn close(self) -> Result<i64, Error> {
        Ok(self.balance)
    }

    #[audited(action = "customer.delete", resource = "customer", id = self.id)]
    fn close_boxed(self: Box<Self>) -> i64 {
        self.balance
    }

    #[audited(action = "customer_record.read", resource = "customer", id = self.id)]
    async fn fetch(&self) -> Result<i64, Error> {
        tokio::task::yield_now().await;
        Ok(self.balance)
    }

    #[audited(action = "billing.update", resource = "customer", id = self.id)]
    async fn reset(&mut self) {
        tokio::task::yield_now().await;
        self.balance = 0;
    }
}

pub struct Wrapper<T>(T);

impl<T: std::fmt::Display + Clone> Wrapper<T> {
    #[audited(action = "customer_record.read", resource = "customer", id = self.0)]
    fn get(&self) -> T {
        self.0.clone()
    }
}

fn main() {
    let ((), count) = sink::with_sink(|| {
        let mut account = Account::open("cust_1");
        assert_eq!(account.id(), "cust_1");
        *account.deposit(5).unwrap() += 1;
        assert!(account.deposit(-1).is_err());
        assert_eq!(account.close().unwrap(), 6);
        assert_eq!(Box::new(Account::open("cust_2")).close_boxed(), 0);
        assert_eq!(Wrapper(7).get(), 7);
    });
    assert_eq!(count, 8);

    let (balance, count) = sink::block_on(async {
        let mut account = Account {
            id: "cust_3".into(),
            balance: 9,
        };
        let before = account.fetch().await.unwrap();
        account.reset().await;
        before + account.fetch().await.unwrap()
    });
    assert_eq!(balance, 9);
    assert_eq!(count, 3);
}
