//! The calling convention between host and guest: the guest's exports and the host's one
//! import, by name.
//!
//! - `azr_init()`: wizer's initialisation function (builds the interpreter); never called
//!   after the snapshot.
//! - `azr_alloc(len) -> ptr`: a buffer for the host to write a request (or an item's
//!   arguments) into.
//! - `azr_prepare(ptr, len) -> status`: takes a [`Request`](crate::Request) as JSON; 0 when
//!   prepared, 1 when it could not be read (the reason went through `item_done` as a fault).
//! - `azr_item(index, ptr, len) -> status`: runs item `index`; `ptr`/`len` carry the answer
//!   a first stage evaluated, or are 0. It calls `item_done` exactly once.
//! - import `azr.item_done(ptr, len)`: one [`ItemResult`](crate::ItemResult) as JSON.
//!
//! The names are macros as well as constants because the guest's attributes that name a
//! symbol (`export_name`, `link_name`) take a literal, which a macro can produce and a
//! constant cannot; the constants are those same literals, for the host.

/// The name of the guest's initialisation export.
#[macro_export]
macro_rules! export_init {
    () => {
        "azr_init"
    };
}

/// The name of the guest's allocation export.
#[macro_export]
macro_rules! export_alloc {
    () => {
        "azr_alloc"
    };
}

/// The name of the guest's export that takes a request.
#[macro_export]
macro_rules! export_prepare {
    () => {
        "azr_prepare"
    };
}

/// The name of the guest's export that runs one item.
#[macro_export]
macro_rules! export_item {
    () => {
        "azr_item"
    };
}

/// The name of the host function the guest imports to hand back a result.
#[macro_export]
macro_rules! import_item_done {
    () => {
        "item_done"
    };
}

pub const INIT: &str = export_init!();
pub const ALLOC: &str = export_alloc!();
pub const PREPARE: &str = export_prepare!();
pub const ITEM: &str = export_item!();
/// The import module of the host's functions. The guest's `#[link(wasm_import_module)]`
/// cannot take a macro, so it writes this literal itself.
pub const HOST_MODULE: &str = "azr";
pub const ITEM_DONE: &str = import_item_done!();
/// The guest's linear memory export (the toolchain's name for it).
pub const MEMORY: &str = "memory";
