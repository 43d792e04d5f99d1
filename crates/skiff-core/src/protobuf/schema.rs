//! The protobuf schema of every Kubernetes message, generated at build time (see the crate's
//! `build.rs`): per message, its fields' tag numbers, JSON names and wire types.
//!
//! Invariants: messages are sorted by their lowercase full name (the proto package below
//! `k8s.io`, e.g. `api.core.v1.configmap`), so lookups are binary searches; fields are sorted
//! by tag; every message index in a [`Kind`] points into [`MESSAGES`].

/// One protobuf message type.
#[derive(Debug)]
pub(super) struct Message {
    /// Lowercase full name, e.g. `apimachinery.pkg.apis.meta.v1.objectmeta`.
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// One field of a [`Message`].
#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    /// The JSON name (which is also the name in `generated.proto`).
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// The JSON field has no `omitempty`: a zero value is kept.
    pub required: bool,
    /// An embedded Go struct (`json:",inline"`): its fields are the parent's in JSON.
    pub inline: bool,
}

/// The wire type and meaning of a field. Kubernetes maps always have string keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
    /// A message: an index into [`MESSAGES`].
    Message(usize),
    MapOfStrings,
    MapOfBytes,
    MapOfMessages(usize),
}

include!(concat!(env!("OUT_DIR"), "/protobuf_schema.rs"));

impl Message {
    /// The field with tag number `tag`.
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by_key(&tag, |field| field.tag)
            .ok()
            .and_then(|index| fields.get(index))
    }
}

/// The message with the lowercase full name `name`.
pub(super) fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|message| message.name.cmp(name))
        .ok()
        .and_then(|index| MESSAGES.get(index))
}

/// The message at `index` in the table.
pub(super) fn by_index(index: usize) -> Option<&'static Message> {
    MESSAGES.get(index)
}
