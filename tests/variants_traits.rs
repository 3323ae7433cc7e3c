//! Compile-time checks of the auto traits of the variants' public types: they are `Send`
//! (and `Sync`, `Unpin`) when what they hold is.

use std::future::Ready;

use abstractions::{
    BoundedOrdered, ForEachBounded, SpawnEach, SpawnEachLocal, TryBoundedUnordered, UntilStopped,
};
use futures::executor::LocalSpawner;
use futures::stream::Iter;

type Source = Iter<std::vec::IntoIter<Ready<u32>>>;
type TrySource = Iter<std::vec::IntoIter<Ready<Result<u32, String>>>>;

/// A spawner that is `Send` and `Sync` (it refuses every task; only its type matters here).
struct SendSpawner;

impl futures::task::Spawn for SendSpawner {
    fn spawn_obj(
        &self,
        _future: futures::future::FutureObj<'static, ()>,
    ) -> Result<(), futures::task::SpawnError> {
        Err(futures::task::SpawnError::shutdown())
    }
}

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}

#[test]
fn the_variants_are_send_sync_and_unpin_when_their_parts_are() {
    send::<BoundedOrdered<Source>>();
    sync::<BoundedOrdered<Source>>();
    unpin::<BoundedOrdered<Source>>();
    send::<TryBoundedUnordered<TrySource>>();
    sync::<TryBoundedUnordered<TrySource>>();
    unpin::<TryBoundedUnordered<TrySource>>();
    send::<UntilStopped<Source>>();
    sync::<UntilStopped<Source>>();
    unpin::<UntilStopped<Source>>();
    send::<ForEachBounded<Source, Ready<()>, fn(u32) -> Ready<()>>>();
    sync::<ForEachBounded<Source, Ready<()>, fn(u32) -> Ready<()>>>();
    unpin::<ForEachBounded<Source, Ready<()>, fn(u32) -> Ready<()>>>();
    unpin::<SpawnEach<Source, LocalSpawner>>();
    unpin::<SpawnEachLocal<Source, LocalSpawner>>();
    send::<SpawnEach<Source, SendSpawner>>();
    sync::<SpawnEach<Source, SendSpawner>>();
}
