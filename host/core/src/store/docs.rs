//! Generic storage for "document" objects: a row with a few indexed columns and a JSON `body`.
//!
//! Assistants, threads, messages, files, uploads and vector stores are read and written whole,
//! so storing their wire JSON in one column keeps the schema small and lets fields be added
//! without migrations. Columns exist only for what queries filter or order on.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::list::ListScope;
use super::{bind_all, ListParams, Page, Store, Val};
use crate::model::ids::{
    AssistantId, ConversationId, FileId, ItemId, MessageId, ResponseId, RunId, StepId, ThreadId,
    TypedId, UploadId, VectorStoreId,
};
use crate::model::{
    Assistant, Conversation, FileObject, Item, Message, ResponseObject, Run, RunStep, Thread,
    Upload, VectorStoreDoc,
};

/// A stored document as raw JSON, with its id.
#[derive(Debug)]
pub struct RawDoc {
    pub id: String,
    pub body: Box<serde_json::value::RawValue>,
}

impl Serialize for RawDoc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(s)
    }
}

/// Implements [`Doc`] for a model type with `id` and `created_at: i64` fields; `columns`
/// names the function giving a row's indexed columns, for types that have any.
macro_rules! impl_doc {
    ($ty:ty, id = $id:ty, table = $table:literal, name = $name:literal $(, columns = $columns:ident)?) => {
        impl Doc for $ty {
            type Id = $id;
            const TABLE: &'static str = $table;
            const NAME: &'static str = $name;
            fn id(&self) -> &str {
                &self.id
            }
            fn created_at(&self) -> i64 {
                self.created_at
            }
            $(
                fn columns(&self) -> Vec<(&'static str, Val)> {
                    $columns(self)
                }
            )?
        }
    };
}

/// An object stored as a JSON document in its own table.
pub trait Doc: Serialize + DeserializeOwned + Send + Sync + Unpin {
    /// The type of this document's id.
    type Id: TypedId;
    /// The table; it has `seq`, `id`, `project_id`, `created_at` and `body` columns.
    const TABLE: &'static str;
    /// The noun in "No {NAME} found with id '…'."
    const NAME: &'static str;
    fn id(&self) -> &str;
    fn created_at(&self) -> i64;
    /// The indexed columns every row of this type has besides id, project, created_at and
    /// body; every insert and upsert writes them, so no caller can forget one.
    fn columns(&self) -> Vec<(&'static str, Val)> {
        Vec::new()
    }
}

impl_doc!(
    Assistant,
    id = AssistantId,
    table = "assistants",
    name = "assistant"
);
impl_doc!(Thread, id = ThreadId, table = "threads", name = "thread");
impl_doc!(
    Message,
    id = MessageId,
    table = "messages",
    name = "message",
    columns = message_columns
);
impl_doc!(
    FileObject,
    id = FileId,
    table = "files",
    name = "file",
    columns = file_columns
);
impl_doc!(Upload, id = UploadId, table = "uploads", name = "upload");
impl_doc!(
    VectorStoreDoc,
    id = VectorStoreId,
    table = "vector_stores",
    name = "vector store"
);
impl_doc!(
    Conversation,
    id = ConversationId,
    table = "conversations",
    name = "conversation"
);
impl_doc!(
    Item,
    id = ItemId,
    table = "items",
    name = "item",
    columns = item_columns
);
impl_doc!(
    ResponseObject,
    id = ResponseId,
    table = "responses",
    name = "response",
    columns = response_columns
);
impl_doc!(Run, id = RunId, table = "runs", name = "run");
impl_doc!(
    RunStep,
    id = StepId,
    table = "run_steps",
    name = "run step",
    columns = step_columns
);

/// The indexed columns of a message row: its thread and run.
fn message_columns(m: &Message) -> Vec<(&'static str, Val)> {
    vec![
        ("thread_id", Val::Text(m.thread_id.to_string())),
        (
            "run_id",
            Val::OptText(m.run_id.as_ref().map(|r| r.to_string())),
        ),
    ]
}

/// The indexed columns of a file row: its size (a project's storage use is summed from it).
fn file_columns(f: &FileObject) -> Vec<(&'static str, Val)> {
    vec![("bytes", Val::Int(f.bytes))]
}

/// The indexed columns of an item row: the conversation and the response it belongs to.
fn item_columns(i: &Item) -> Vec<(&'static str, Val)> {
    vec![
        (
            "conversation_id",
            Val::OptText(i.conversation_id.as_ref().map(|c| c.to_string())),
        ),
        (
            "response_id",
            Val::OptText(i.response_id.as_ref().map(|r| r.to_string())),
        ),
    ]
}

/// The indexed column of a response row that its body decides, for the janitor: whether the
/// client asked to keep it. (When it ended is written by `Store::response_ended_in`, from the
/// run's end: the body's `completed_at` is only set for completed responses.)
fn response_columns(r: &ResponseObject) -> Vec<(&'static str, Val)> {
    vec![("stored", Val::Int(i64::from(r.stored())))]
}

/// The indexed columns of a run step row: its run.
fn step_columns(s: &RunStep) -> Vec<(&'static str, Val)> {
    vec![("run_id", Val::Text(s.run_id.to_string()))]
}

impl Store {
    /// Inserts a document with extra indexed columns (e.g. `thread_id`).
    ///
    /// One statement, so on SQLite it can join a group commit with concurrent inserts; on
    /// PostgreSQL it runs in autocommit on the pool.
    pub async fn insert<D: Doc>(
        &self,
        project: &str,
        doc: &D,
        extra: &[(&'static str, Val)],
    ) -> StoreResult<()> {
        let cols = row_columns(doc, extra);
        let sql = insert_sql::<D>(&cols);
        let args = insert_args(project, doc, &cols)?;
        self.execute_one(sql, args).await.map(|_| ())
    }

    /// Inserts `doc` only if its parent `P` with `parent_id` exists in the project (a message
    /// under its thread), as one statement — the existence check and the insert cannot be
    /// separated by a concurrent delete — and only if `guard`: SQL appended to the statement's
    /// `WHERE` in which `$P` stands for the parent id (e.g. a `NOT EXISTS` that keeps messages
    /// out of a thread with an active run). Returns the rows inserted (0 or 1) and leaves telling
    /// a missing parent from a failed guard to the caller.
    pub async fn insert_under_unless<P: Doc, D: Doc>(
        &self,
        project: &str,
        parent_id: &str,
        doc: &D,
        extra: &[(&'static str, Val)],
        guard: &str,
    ) -> StoreResult<u64> {
        let extra = row_columns(doc, extra);
        let mut args = insert_args(project, doc, &extra)?;
        let cols = insert_columns(&extra);
        let vals: Vec<String> = (1..=args.len()).map(|i| format!("${i}")).collect();
        let parent = format!("${}", args.len() + 1);
        let sql = format!(
            "INSERT INTO {} ({cols}) SELECT {} WHERE EXISTS \
             (SELECT 1 FROM {} WHERE id = {parent} AND project_id = $2){}",
            D::TABLE,
            vals.join(", "),
            P::TABLE,
            guard.replace("$P", &parent)
        );
        args.push(Val::Text(parent_id.to_string()));
        self.execute_one(sql, args).await
    }

    /// One write statement: through group commit on SQLite, in autocommit on PostgreSQL.
    pub(super) async fn execute_one(&self, sql: String, args: Vec<Val>) -> StoreResult<u64> {
        if let Some(group) = &self.group {
            return group.execute(sql, args).await;
        }
        Ok(bind_all(sqlx::query(&sql), &args)
            .execute(self.write())
            .await?
            .rows_affected())
    }

    pub async fn insert_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        doc: &D,
        extra: &[(&'static str, Val)],
    ) -> StoreResult<()> {
        let cols = row_columns(doc, extra);
        let sql = insert_sql::<D>(&cols);
        let args = insert_args(project, doc, &cols)?;
        bind_all(sqlx::query(&sql), &args)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Fetches a document of the project, or a 404 in the wire wording.
    pub async fn get<D: Doc>(&self, project: &str, id: &str) -> StoreResult<D> {
        self.find::<D>(project, id)
            .await?
            .ok_or_else(|| StoreError::not_found(D::NAME, id))
    }

    /// Fetches a document of the project if it exists.
    pub async fn find<D: Doc>(&self, project: &str, id: &str) -> StoreResult<Option<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE id = $1 AND project_id = $2",
            D::TABLE
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(self.read())
            .await?;
        match row {
            Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>(0)?)?)),
            None => Ok(None),
        }
    }

    /// [`Store::find`] through an open transaction. Code that holds a transaction must read
    /// through it: on PostgreSQL reads and writes share one pool, and a transaction waiting for
    /// a second connection can starve the pool.
    pub async fn find_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
    ) -> StoreResult<Option<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE id = $1 AND project_id = $2",
            D::TABLE
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Read-modify-write of one document under the write lock, so concurrent updates never
    /// lose each other's fields. `f` may reject the change with its own error; nothing is
    /// written then.
    pub async fn update<D: Doc, E: From<StoreError>>(
        &self,
        project: &str,
        id: &str,
        f: impl FnOnce(&mut D) -> Result<(), E>,
    ) -> Result<D, E> {
        let mut tx = self.begin().await?;
        let doc = self.update_in(&mut tx, project, id, f).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// [`Store::update`] inside a caller's transaction.
    pub async fn update_in<D: Doc, E: From<StoreError>>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
        f: impl FnOnce(&mut D) -> Result<(), E>,
    ) -> Result<D, E> {
        let mut doc: D = self.lock_doc_in(tx, project, id).await?;
        f(&mut doc)?;
        self.write_doc_in(tx, &doc).await?;
        Ok(doc)
    }

    /// Reads a document for update (locked on PostgreSQL until `tx` ends).
    async fn lock_doc_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
    ) -> StoreResult<D> {
        self.hold_in(tx, project, id)
            .await?
            .ok_or_else(|| StoreError::not_found(D::NAME, id))
    }

    /// Reads a document and holds it until `tx` ends (a row lock on PostgreSQL; SQLite's
    /// writes are serial), so a concurrent delete waits for what `tx` adds under it.
    pub async fn hold_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
    ) -> StoreResult<Option<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE id = $1 AND project_id = $2{}",
            D::TABLE,
            self.lock_rows()
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            Some(row) => Ok(Some(serde_json::from_str(&row.try_get::<String, _>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Writes back a document read with [`Store::lock_doc_in`], with its indexed columns.
    async fn write_doc_in<D: Doc>(&self, tx: &mut super::Tx, doc: &D) -> StoreResult<()> {
        let cols = doc.columns();
        let sets: String = cols
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!(", {c} = ${}", i + 3))
            .collect();
        let sql = format!("UPDATE {} SET body = $1{sets} WHERE id = $2", D::TABLE);
        let mut args = vec![
            Val::Text(serde_json::to_string(doc)?),
            Val::Text(doc.id().to_string()),
        ];
        args.extend(cols.into_iter().map(|(_, v)| v));
        super::bind_all(sqlx::query(&sql), &args)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Deletes a document of the project (leaving a tombstone for cursors); 404 if there was none.
    pub async fn delete<D: Doc>(&self, project: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        self.delete_in::<D>(&mut tx, project, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::delete`] inside a caller's transaction.
    pub async fn delete_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
    ) -> StoreResult<()> {
        let sql = format!(
            "DELETE FROM {} WHERE id = $1 AND project_id = $2 RETURNING seq",
            D::TABLE
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found(D::NAME, id))?;
        self.tombstone_in(tx, D::TABLE, "", id, project, row.try_get(0)?)
            .await
    }

    /// Like [`Store::list`], but hands back each document's stored JSON untouched. The stored
    /// body is exactly the wire object, so list endpoints splice it into the response instead of
    /// parsing and re-serialising every item.
    pub async fn list_raw<D: Doc>(
        &self,
        project: &str,
        parent: Option<(&'static str, &str)>,
        filters: Vec<(&'static str, Val)>,
        params: &ListParams,
    ) -> StoreResult<Page<RawDoc>> {
        let scope = ListScope {
            table: D::TABLE,
            project,
            parent,
            filters,
            tombstone_parent: "",
        };
        self.list_rows(&scope, "id, body", params, raw_doc).await
    }

    /// One page of the project's documents, optionally narrowed by extra column equalities.
    pub async fn list<D: Doc>(
        &self,
        project: &str,
        parent: Option<(&'static str, &str)>,
        filters: Vec<(&'static str, Val)>,
        params: &ListParams,
    ) -> StoreResult<Page<D>> {
        let page = self.list_raw::<D>(project, parent, filters, params).await?;
        let items = page
            .items
            .iter()
            .map(|raw| serde_json::from_str(raw.body.get()))
            .collect::<Result<Vec<D>, _>>()?;
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }
}

/// A row selected as `id, body`, its body untouched.
pub(super) fn raw_doc(r: &sqlx::any::AnyRow) -> StoreResult<RawDoc> {
    let body = serde_json::value::RawValue::from_string(r.try_get::<String, _>(1)?)?;
    Ok(RawDoc {
        id: r.try_get(0)?,
        body,
    })
}

/// The document's own indexed columns ([`Doc::columns`]) followed by the caller's `extra`.
fn row_columns<D: Doc>(doc: &D, extra: &[(&'static str, Val)]) -> Vec<(&'static str, Val)> {
    let mut cols = doc.columns();
    cols.extend_from_slice(extra);
    cols
}

/// The column list of an insert, in the order of [`insert_args`].
fn insert_columns(extra: &[(&'static str, Val)]) -> String {
    let mut cols = String::from("id, project_id, created_at, body");
    for (c, _) in extra {
        cols.push_str(", ");
        cols.push_str(c);
    }
    cols
}

pub(super) fn insert_sql<D: Doc>(extra: &[(&'static str, Val)]) -> String {
    let vals: Vec<String> = (1..=4 + extra.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        D::TABLE,
        insert_columns(extra),
        vals.join(", ")
    )
}

/// The values of an insert: id, project, created_at, body, then the extra columns.
pub(super) fn insert_args<D: Doc>(
    project: &str,
    doc: &D,
    extra: &[(&'static str, Val)],
) -> StoreResult<Vec<Val>> {
    let mut args = vec![
        Val::Text(doc.id().to_string()),
        Val::Text(project.to_string()),
        Val::Int(doc.created_at()),
        Val::Text(serde_json::to_string(doc)?),
    ];
    args.extend(extra.iter().map(|(_, v)| v.clone()));
    Ok(args)
}

impl Store {
    /// Which of `ids` name documents of type `D` in the project (one query per 500 ids).
    pub async fn existing<D: Doc>(
        &self,
        project: &str,
        ids: &[impl AsRef<str>],
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        for batch in ids.chunks(500) {
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id FROM {} WHERE project_id = $1 AND id IN ({})",
                D::TABLE,
                marks.join(", ")
            );
            let mut args = vec![Val::Text(project.to_string())];
            args.extend(batch.iter().map(|id| Val::Text(id.as_ref().to_string())));
            for r in bind_all(sqlx::query(&sql), &args)
                .fetch_all(self.read())
                .await?
            {
                found.insert(r.try_get::<String, _>(0)?);
            }
        }
        Ok(found)
    }
}
