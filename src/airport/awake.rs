//! How long the object is awake, for the metrics window's `awake_ms`: every hook and every piece
//! of background work holds a [`Stay`] while it runs. A hibernatable Durable Object is billed for
//! this time. By the runtime's clock, which in production moves only across I/O: an event that
//! does none counts as nothing, so this is the time spent waiting on storage, D1 and the network,
//! plus the CPU time between those waits.

use airport_protocol::metrics::AwakeClock;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default)]
pub struct Awake(RefCell<AwakeClock>);

/// Held while an event or its background work is under way.
pub struct Stay(Rc<Awake>);

impl Awake {
    pub fn stay(self: &Rc<Self>) -> Stay {
        self.0.borrow_mut().begin(crate::now_ms());
        Stay(Rc::clone(self))
    }

    /// Runs `work` in the background, the object held awake until it ends.
    pub fn in_background(self: &Rc<Self>, work: impl Future<Output = ()> + 'static) {
        let stay = self.stay();
        wasm_bindgen_futures::spawn_local(async move {
            let _stay = stay;
            work.await;
        });
    }

    /// The awake time finished since the last take.
    pub fn take(&self) -> i64 {
        self.0.borrow_mut().take()
    }
}

impl Drop for Stay {
    fn drop(&mut self) {
        self.0.0.borrow_mut().end(crate::now_ms());
    }
}
