//! Client quotas, as Kafka's Admin client and `kafka-configs.sh --entity-type users|clients`
//! manage them: AlterClientQuotas and DescribeClientQuotas.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{s, Admin};
use crate::error::{ClientError, Result};

pub use strom_types::quota::{EntityName, QuotaEntity};

fn quota_error(code: i16, message: Option<StrBytes>) -> ClientError {
    let e = ClientError::kafka(code);
    match message.filter(|m| !m.is_empty()) {
        Some(m) => ClientError::Protocol(format!("{e}: {m}")),
        None => e,
    }
}

impl Admin {
    /// Sets (`Some`) or removes (`None`) quota keys of `entity`.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
    ) -> Result<()> {
        let entry = EntryData::default()
            .with_entity(
                entity
                    .parts()
                    .into_iter()
                    .map(|(k, n)| {
                        EntityData::default()
                            .with_entity_type(s(k))
                            .with_entity_name(n.map(s))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(key, value)| {
                        OpData::default()
                            .with_key(s(key))
                            .with_value(value.unwrap_or(0.0))
                            .with_remove(value.is_none())
                    })
                    .collect(),
            );
        let conn = self.cluster.any_connection().await?;
        let r = conn
            .send(&AlterClientQuotasRequest::default().with_entries(vec![entry]))
            .await?;
        match r.entries.into_iter().find(|e| e.error_code != 0) {
            Some(e) => Err(quota_error(e.error_code, e.error_message)),
            None => Ok(()),
        }
    }

    /// Every entity with quotas that has the parts given (a part `None`: any entity, with or
    /// without one; the default matches only the default), with its quotas.
    pub async fn describe_client_quotas(
        &self,
        user: Option<&EntityName>,
        client_id: Option<&EntityName>,
    ) -> Result<Vec<(QuotaEntity, Vec<(String, f64)>)>> {
        let component = |kind: &str, name: &EntityName| {
            let c = ComponentData::default().with_entity_type(s(kind));
            match name {
                EntityName::Default => c.with_match_type(1),
                EntityName::Named(n) => c.with_match_type(0).with_match(Some(s(n))),
            }
        };
        let mut components = Vec::new();
        if let Some(u) = user {
            components.push(component(strom_types::quota::USER, u));
        }
        if let Some(c) = client_id {
            components.push(component(strom_types::quota::CLIENT_ID, c));
        }
        let conn = self.cluster.any_connection().await?;
        let r = conn
            .send(&DescribeClientQuotasRequest::default().with_components(components))
            .await?;
        if r.error_code != 0 {
            return Err(quota_error(r.error_code, r.error_message));
        }
        r.entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let entity = QuotaEntity::from_parts(
                    e.entity
                        .iter()
                        .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref())),
                )
                .map_err(ClientError::Protocol)?;
                let values = e
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                Ok((entity, values))
            })
            .collect()
    }
}
