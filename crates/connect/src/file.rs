//! The file connectors, as Kafka's FileStreamSource and FileStreamSink (the ones Kafka's
//! quickstart runs, with the same settings): the source turns each line of a file into a
//! string record and resumes from the byte position it stored; the sink appends each
//! record's value to a file, one line each, and syncs it before its offsets are committed.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::api::{
    Connector, Plugin, Props, SinkTask, SinkTaskContext, SourceTask, SourceTaskContext,
    TaskFactory, TopicPartition,
};
use crate::config::{ConfigDef, ConfigValue, Importance, Kind, Setting, Validator};
use crate::data::{Schema, Type, Value};
use crate::record::{Record, SinkRecord, SourceMap, SourceRecord};
use crate::ConnectError;

/// How long a source task at the end of its file waits before looking again. Kafka's task
/// sleeps a second; a file has no change notification that works everywhere (NFS, a file
/// replaced by rename), so this looks again, and a shorter wait keeps the latency low.
const EOF_WAIT: Duration = Duration::from_millis(200);

/// Bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;

/// `org.apache.kafka.connect.file.FileStreamSourceConnector`.
pub const SOURCE: Plugin = Plugin {
    class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
    aliases: &["FileStreamSource"],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(FileSourceConnector::default()),
    tasks: TaskFactory::Source(|| Box::new(FileSourceTask::default())),
};

/// `org.apache.kafka.connect.file.FileStreamSinkConnector`.
pub const SINK: Plugin = Plugin {
    class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
    aliases: &["FileStreamSink"],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(FileSinkConnector::default()),
    tasks: TaskFactory::Sink(|| Box::new(FileSinkTask::default())),
};

fn source_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "file",
            Kind::String,
            None,
            Importance::High,
            "Source filename. If not specified, the standard input will be used",
        )
        .nullable()
        .define(
            "topic",
            Kind::List,
            None,
            Importance::High,
            "The topic to publish data to",
        )
        .define(
            "batch.size",
            Kind::Int,
            Some("2000"),
            Importance::Low,
            "The maximum number of records the source task can read from the file each time it is polled",
        )
        .validated(Validator::AtLeast(1.0))
}

fn sink_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "file",
            Kind::String,
            None,
            Importance::High,
            "Destination filename. If not specified, the standard output will be used",
        )
        .nullable()
}

/// The source connector: one task for the one file.
#[derive(Debug, Default)]
pub struct FileSourceConnector {
    props: Props,
}

#[async_trait]
impl Connector for FileSourceConnector {
    fn config_def(&self) -> ConfigDef {
        source_def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        let mut values = source_def().validate(props);
        for v in &mut values {
            let topics = props
                .get("topic")
                .map(|t| t.split(',').filter(|s| !s.trim().is_empty()).count());
            if v.name == "topic" && v.errors.is_empty() && topics != Some(1) {
                v.errors.push(
                    "'topic' in FileStreamSourceConnector configuration requires definition of a single topic"
                        .into(),
                );
            }
        }
        values
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        // One file, one reader: a second task would read the same lines again.
        vec![self.props.clone()]
    }
}

/// The sink connector: as many tasks as asked, all appending to the one file.
#[derive(Debug, Default)]
pub struct FileSinkConnector {
    props: Props,
}

#[async_trait]
impl Connector for FileSinkConnector {
    fn config_def(&self) -> ConfigDef {
        sink_def()
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone(); max_tasks.max(1)]
    }
}

/// Where the source reads.
enum Input {
    File {
        path: PathBuf,
        file: Option<tokio::fs::File>,
    },
    Stdin(tokio::io::Stdin),
}

/// Reads lines and remembers the byte position after each.
#[derive(Default)]
pub struct FileSourceTask {
    input: Option<Input>,
    topic: String,
    batch_size: usize,
    /// The position of the first byte of `pending` in the file.
    position: u64,
    /// Bytes read that do not end in a newline yet.
    pending: Vec<u8>,
    partition: SourceMap,
    /// The read buffer, kept between reads.
    chunk: Vec<u8>,
    /// The values' schema (a string), shared by every record.
    schema: Option<Arc<Schema>>,
}

impl FileSourceTask {
    /// Reads what is there, appending to `pending`; false at the end of the input.
    async fn fill(&mut self) -> Result<bool, ConnectError> {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.resize(CHUNK, 0);
        let n = match &mut self.input {
            Some(Input::File { path, file }) => {
                if file.is_none() {
                    match tokio::fs::File::open(&path).await {
                        Ok(mut f) => {
                            let at = self.position + self.pending.len() as u64;
                            if at > 0 {
                                f.seek(SeekFrom::Start(at)).await.map_err(io)?;
                            }
                            *file = Some(f);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            tracing::debug!(file = %path.display(), "the source file is not there yet");
                            return Ok(false);
                        }
                        Err(e) => return Err(io(e)),
                    }
                }
                match file {
                    Some(f) => read_some(f, &mut chunk).await?,
                    None => 0,
                }
            }
            Some(Input::Stdin(stdin)) => read_some(stdin, &mut chunk).await?,
            None => return Err(ConnectError::Connect("the task is not started".into())),
        };
        self.pending.extend_from_slice(&chunk[..n]);
        self.chunk = chunk;
        Ok(n > 0)
    }

    /// Takes the complete lines out of `pending`, at most `batch_size`.
    fn lines(&mut self) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        let mut start = 0;
        let schema = self
            .schema
            .get_or_insert_with(|| Arc::new(Schema::of(Type::String)))
            .clone();
        while out.len() < self.batch_size {
            let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let end = start + nl;
            let mut line = &self.pending[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let text = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            let after = self.position + start as u64;
            let stdin = matches!(self.input, Some(Input::Stdin(_)));
            out.push(SourceRecord {
                record: Record::new(self.topic.clone())
                    .with_value(Some(schema.clone()), Value::String(text)),
                source_partition: if stdin {
                    SourceMap::new()
                } else {
                    self.partition.clone()
                },
                source_offset: if stdin {
                    SourceMap::new()
                } else {
                    position_map(after)
                },
            });
        }
        self.pending.drain(..start);
        self.position += start as u64;
        out
    }
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, ConnectError> {
    r.read(buf).await.map_err(io)
}

fn io(e: std::io::Error) -> ConnectError {
    ConnectError::Connect(format!("file: {e}"))
}

fn position_map(position: u64) -> SourceMap {
    let mut m = SourceMap::new();
    m.insert("position".into(), json!(position));
    m
}

fn string_setting(
    parsed: &std::collections::BTreeMap<String, Setting>,
    name: &str,
) -> Option<String> {
    match parsed.get(name) {
        Some(Setting::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn start(
        &mut self,
        context: SourceTaskContext,
        props: Props,
    ) -> Result<(), ConnectError> {
        let parsed = source_def().parse(&props)?;
        self.topic = match parsed.get("topic") {
            Some(Setting::List(t)) if t.len() == 1 => t[0].clone(),
            _ => {
                return Err(ConnectError::Config(
                    "'topic' in FileStreamSourceConnector configuration requires definition of a single topic"
                        .into(),
                ))
            }
        };
        self.batch_size = match parsed.get("batch.size") {
            Some(Setting::Long(n)) => (*n).max(1) as usize,
            _ => 2000,
        };
        self.input = Some(match string_setting(&parsed, "file") {
            Some(f) => {
                self.partition.insert("filename".into(), json!(f));
                if let Some(offset) = context.offsets.offset(&self.partition) {
                    match offset.get("position").and_then(|p| p.as_u64()) {
                        Some(p) => self.position = p,
                        None => {
                            return Err(ConnectError::Connect(format!(
                                "Offset position is the incorrect type: {:?}",
                                offset.get("position")
                            )))
                        }
                    }
                }
                tracing::info!(file = %f, position = self.position, "reading the source file");
                Input::File {
                    path: PathBuf::from(f),
                    file: None,
                }
            }
            None => Input::Stdin(tokio::io::stdin()),
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        loop {
            let lines = self.lines();
            if !lines.is_empty() {
                return Ok(lines);
            }
            if !self.fill().await? {
                tokio::time::sleep(EOF_WAIT).await;
                return Ok(Vec::new());
            }
        }
    }
}

/// Where the sink writes.
enum Output {
    File(tokio::fs::File),
    Stdout(tokio::io::Stdout),
}

/// Appends values as lines.
#[derive(Default)]
pub struct FileSinkTask {
    output: Option<Output>,
    buffer: Vec<u8>,
}

/// A value as a line of text: a string as it is, bytes as UTF-8, anything else as JSON
/// (Kafka's sink prints Java's `toString`, which has no equivalent here).
fn line_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "null".into(),
        other => crate::converter::value_json(other).to_string(),
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, _context: SinkTaskContext, props: Props) -> Result<(), ConnectError> {
        let parsed = sink_def().parse(&props)?;
        self.output = Some(match string_setting(&parsed, "file") {
            Some(f) => Output::File(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&f)
                    .await
                    .map_err(|e| {
                        ConnectError::Connect(format!(
                            "Couldn't find or create file '{f}' for FileStreamSinkTask: {e}"
                        ))
                    })?,
            ),
            None => Output::Stdout(tokio::io::stdout()),
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        for r in &records {
            self.buffer
                .extend_from_slice(line_of(&r.record.value).as_bytes());
            self.buffer.push(b'\n');
        }
        if self.buffer.len() >= CHUNK {
            self.write().await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &HashMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        self.write().await?;
        match &mut self.output {
            Some(Output::File(f)) => f.sync_data().await.map_err(io),
            Some(Output::Stdout(s)) => s.flush().await.map_err(io),
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.flush(&HashMap::new()).await
    }
}

impl FileSinkTask {
    async fn write(&mut self) -> Result<(), ConnectError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        match &mut self.output {
            Some(Output::File(f)) => f.write_all(&self.buffer).await.map_err(io)?,
            Some(Output::Stdout(s)) => s.write_all(&self.buffer).await.map_err(io)?,
            None => return Err(ConnectError::Connect("the task is not started".into())),
        }
        self.buffer.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OffsetReader;

    struct Stored(Option<SourceMap>);

    impl OffsetReader for Stored {
        fn offset(&self, _partition: &SourceMap) -> Option<SourceMap> {
            self.0.clone()
        }
    }

    fn props(file: &std::path::Path) -> Props {
        [
            ("file".to_string(), file.display().to_string()),
            ("topic".to_string(), "lines".to_string()),
            ("batch.size".to_string(), "2".to_string()),
        ]
        .into_iter()
        .collect()
    }

    async fn drain(task: &mut FileSourceTask) -> Vec<SourceRecord> {
        let mut all = Vec::new();
        loop {
            let got = task.poll().await.expect("poll");
            if got.is_empty() {
                return all;
            }
            all.extend(got);
        }
    }

    #[tokio::test]
    async fn the_source_reads_lines_in_batches_and_resumes_from_its_position() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\r\ntwo\nthree\npart").expect("write");

        let mut task = FileSourceTask::default();
        let ctx = SourceTaskContext {
            offsets: Arc::new(Stored(None)),
        };
        task.start(ctx, props(&path)).await.expect("start");
        let first = task.poll().await.expect("poll");
        assert_eq!(first.len(), 2, "batch.size caps a poll");
        let rest = drain(&mut task).await;
        let values: Vec<_> = first
            .iter()
            .chain(&rest)
            .map(|r| r.record.value.clone())
            .collect();
        assert_eq!(
            values,
            ["one", "two", "three"]
                .map(|s| Value::String(s.into()))
                .to_vec(),
            "a line without its newline waits"
        );
        let last = rest.last().expect("three");
        assert_eq!(last.source_offset, position_map(15));
        assert_eq!(
            last.source_partition.get("filename"),
            Some(&json!(path.display().to_string()))
        );
        assert_eq!(last.record.topic, "lines");

        // The line is finished later and more come.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut f, b"ial\nfive\n").expect("append");
        let more = drain(&mut task).await;
        let values: Vec<_> = more.iter().map(|r| r.record.value.clone()).collect();
        assert_eq!(
            values,
            ["partial", "five"]
                .map(|s| Value::String(s.into()))
                .to_vec()
        );

        // A new task given the stored position reads only what follows it.
        let mut again = FileSourceTask::default();
        let ctx = SourceTaskContext {
            offsets: Arc::new(Stored(Some(last.source_offset.clone()))),
        };
        again.start(ctx, props(&path)).await.expect("start");
        let values: Vec<_> = drain(&mut again)
            .await
            .iter()
            .map(|r| r.record.value.clone())
            .collect();
        assert_eq!(
            values,
            ["partial", "five"]
                .map(|s| Value::String(s.into()))
                .to_vec()
        );
    }

    #[tokio::test]
    async fn the_source_waits_for_a_missing_file_and_wants_one_topic() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("later.txt");
        let mut task = FileSourceTask::default();
        let ctx = SourceTaskContext {
            offsets: Arc::new(Stored(None)),
        };
        task.start(ctx.clone(), props(&path)).await.expect("start");
        assert!(task.poll().await.expect("poll").is_empty());
        std::fs::write(&path, "hello\n").expect("write");
        assert_eq!(drain(&mut task).await.len(), 1);

        let mut two = props(&path);
        two.insert("topic".into(), "a,b".into());
        assert!(FileSourceTask::default()
            .start(ctx, two.clone())
            .await
            .is_err());
        let values = FileSourceConnector::default().validate(&two);
        let topic = values.iter().find(|v| v.name == "topic").expect("topic");
        assert_eq!(
            topic.errors,
            ["'topic' in FileStreamSourceConnector configuration requires definition of a single topic"]
        );
    }

    #[tokio::test]
    async fn the_sink_appends_values_as_lines_and_syncs_on_flush() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "before\n").expect("write");
        let mut task = FileSinkTask::default();
        let props: Props = [("file".to_string(), path.display().to_string())]
            .into_iter()
            .collect();
        task.start(SinkTaskContext::default(), props)
            .await
            .expect("start");
        let rec = |offset: i64, value: Value| SinkRecord {
            record: Record::new("t").with_value(None, value),
            offset,
        };
        task.put(vec![
            rec(0, Value::String("a".into())),
            rec(1, Value::Int32(7)),
            rec(2, Value::Null),
        ])
        .await
        .expect("put");
        task.flush(&HashMap::new()).await.expect("flush");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "before\na\n7\nnull\n"
        );
    }
}
