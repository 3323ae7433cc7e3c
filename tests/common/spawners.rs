//! The few-line `Spawn` wrappers a tokio or smol user writes for the crate's spawn mode, and a
//! helper that runs a test body with the one that fits the runtime.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use futures::future::{FutureObj, LocalFutureObj};
use futures::task::{LocalSpawn, Spawn, SpawnError};

use super::Runtime;

/// Spawns on a tokio runtime (tokio does not implement `Spawn`).
#[derive(Clone, Debug)]
pub struct TokioSpawner(pub tokio::runtime::Handle);

impl Spawn for TokioSpawner {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.0.spawn(future);
        Ok(())
    }
}

/// Spawns on a smol `Executor` (which does not implement `Spawn`). A smol `Task` cancels its
/// future when dropped: detach it.
#[derive(Clone, Debug)]
pub struct SmolSpawner(pub Arc<smol::Executor<'static>>);

impl Spawn for SmolSpawner {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.0.spawn(future).detach();
        Ok(())
    }
}

/// Spawns `!Send` futures on a smol `LocalExecutor`.
#[derive(Clone, Debug)]
pub struct SmolLocalSpawner(pub Rc<smol::LocalExecutor<'static>>);

impl LocalSpawn for SmolLocalSpawner {
    fn spawn_local_obj(&self, future: LocalFutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.0.spawn(future).detach();
        Ok(())
    }
}

/// Spawns `!Send` futures on the tokio `LocalSet` the caller runs inside.
#[derive(Clone, Copy, Debug)]
pub struct TokioLocalSpawner;

impl LocalSpawn for TokioLocalSpawner {
    fn spawn_local_obj(&self, future: LocalFutureObj<'static, ()>) -> Result<(), SpawnError> {
        tokio::task::spawn_local(future);
        Ok(())
    }
}

/// Either wrapper, to hand the same test body the spawner of its runtime.
#[derive(Clone, Debug)]
pub enum TestSpawner {
    Tokio(TokioSpawner),
    Smol(SmolSpawner),
}

impl Spawn for TestSpawner {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        match self {
            TestSpawner::Tokio(spawner) => spawner.spawn_obj(future),
            TestSpawner::Smol(spawner) => spawner.spawn_obj(future),
        }
    }
}

/// Runs `body` with a spawner for `runtime`: tokio's current runtime, or a smol `Executor`
/// that runs while `body` does.
pub async fn with_spawner<F, Fut>(runtime: Runtime, body: F) -> Fut::Output
where
    F: FnOnce(TestSpawner) -> Fut,
    Fut: Future,
{
    match runtime {
        Runtime::Smol => {
            let executor = Arc::new(smol::Executor::new());
            let spawner = TestSpawner::Smol(SmolSpawner(Arc::clone(&executor)));
            executor.run(body(spawner)).await
        }
        Runtime::TokioCurrentThread | Runtime::TokioMultiThread => {
            let handle = tokio::runtime::Handle::current();
            body(TestSpawner::Tokio(TokioSpawner(handle))).await
        }
    }
}
