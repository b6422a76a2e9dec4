//! CreateIndex parameter checks: what 2.3.5's proxy checks (`indexparamcheck`, `checkTrain`)
//! before it calls DataCoord, done again here because every accepted index becomes IndexNode
//! `CreateJob`s for all of the collection's segments, retried until they succeed. A request
//! sent straight to DataCoord (skipping the proxy) with an unknown index type, a dimension that
//! is not a number or absurd build parameters would otherwise wedge the builder on a job that
//! can never finish, or hand knowhere values it was never meant to see.

use std::collections::HashMap;

use milvus_proto::common::KeyValuePair;
use milvus_proto::index::CreateIndexRequest;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};

use crate::error::{IndexError, IndexResult};

const INDEX_TYPE: &str = "index_type";
const METRIC_TYPE: &str = "metric_type";
const DIM: &str = "dim";

/// 2.3.5's `indexparamcheck` bounds.
const MAX_DIM: i64 = 32768;
const MAX_NLIST: i64 = 65536;
const MAX_NBITS: i64 = 16;
const MAX_HNSW_M: i64 = 2048;
const MAX_EF_CONSTRUCTION: i64 = i32::MAX as i64;

const FLOAT_METRICS: [&str; 3] = ["L2", "IP", "COSINE"];
const BINARY_METRICS: [&str; 4] = ["HAMMING", "JACCARD", "SUBSTRUCTURE", "SUPERSTRUCTURE"];

/// Checks a CreateIndex request against the collection's schema: the field exists and can be
/// indexed, the index type fits the field, and every build parameter the type uses is a number
/// in 2.3.5's range. Errors are [`IndexError::InvalidParameter`] (code 1100).
pub(crate) fn check_create_index(
    req: &CreateIndexRequest,
    schema: &CollectionSchema,
) -> IndexResult<()> {
    let Some(field) = schema.fields.iter().find(|f| f.field_id == req.field_id) else {
        return Err(invalid(format!(
            "field {} not in collection {}",
            req.field_id, req.collection_id
        )));
    };
    let mut params: HashMap<&str, &str> = HashMap::new();
    for kv in req.type_params.iter().chain(&req.index_params) {
        if params
            .insert(&kv.key, &kv.value)
            .is_some_and(|v| v != kv.value)
        {
            return Err(invalid(format!("parameter {} given twice", kv.key)));
        }
    }
    let index_type = params.get(INDEX_TYPE).copied().unwrap_or("");
    match DataType::try_from(field.data_type) {
        Ok(DataType::FloatVector | DataType::Float16Vector) => {
            check_vector(field, index_type, &params, false)
        }
        Ok(DataType::BinaryVector) => check_vector(field, index_type, &params, true),
        Ok(DataType::VarChar | DataType::String) => {
            check_scalar(field, index_type, &["", "Trie", "marisa-trie"])
        }
        Ok(
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float
            | DataType::Double,
        ) => check_scalar(field, index_type, &["", "STL_SORT", "Asceneding"]),
        _ => Err(invalid(format!(
            "field {} ({}) cannot be indexed",
            field.name, field.data_type
        ))),
    }
}

fn check_scalar(field: &FieldSchema, index_type: &str, allowed: &[&str]) -> IndexResult<()> {
    if allowed.contains(&index_type) {
        return Ok(());
    }
    Err(invalid(format!(
        "index type {index_type:?} not valid for scalar field {}",
        field.name
    )))
}

fn check_vector(
    field: &FieldSchema,
    index_type: &str,
    params: &HashMap<&str, &str>,
    binary: bool,
) -> IndexResult<()> {
    let float_types = [
        "FLAT",
        "IVF_FLAT",
        "IVF_PQ",
        "IVF_SQ8",
        "SCANN",
        "HNSW",
        "DISKANN",
        "GPU_IVF_FLAT",
        "GPU_IVF_PQ",
        "GPU_CAGRA",
        "GPU_BRUTE_FORCE",
    ];
    let binary_types = ["BIN_FLAT", "BIN_IVF_FLAT", "HNSW"];
    let known = if binary {
        binary_types.as_slice()
    } else {
        float_types.as_slice()
    };
    if !known.contains(&index_type) {
        return Err(invalid(format!(
            "index type {index_type:?} not valid for vector field {}",
            field.name
        )));
    }
    let metrics = if binary {
        BINARY_METRICS.as_slice()
    } else {
        FLOAT_METRICS.as_slice()
    };
    if let Some(metric) = params.get(METRIC_TYPE)
        && !metrics.iter().any(|m| m.eq_ignore_ascii_case(metric))
    {
        return Err(invalid(format!(
            "metric type {metric:?} not valid for {index_type}"
        )));
    }
    let schema_dim = dim_of(&field.type_params)?;
    let dim = match params.get(DIM) {
        Some(value) => {
            let dim = int_param(DIM, value, 1, MAX_DIM)?;
            if schema_dim.is_some_and(|d| d != dim) {
                return Err(invalid(format!(
                    "dim {dim} differs from the schema's {}",
                    schema_dim.unwrap_or_default()
                )));
            }
            Some(dim)
        }
        None => schema_dim,
    };
    let required = |key: &str, min: i64, max: i64| -> IndexResult<i64> {
        match params.get(key) {
            Some(value) => int_param(key, value, min, max),
            None => Err(invalid(format!("{index_type} needs parameter {key}"))),
        }
    };
    let optional = |key: &str, min: i64, max: i64| -> IndexResult<()> {
        params
            .get(key)
            .map_or(Ok(()), |v| int_param(key, v, min, max).map(|_| ()))
    };
    match index_type {
        "IVF_FLAT" | "IVF_SQ8" | "SCANN" | "GPU_IVF_FLAT" | "BIN_IVF_FLAT" => {
            required("nlist", 1, MAX_NLIST)?;
        }
        "IVF_PQ" | "GPU_IVF_PQ" => {
            required("nlist", 1, MAX_NLIST)?;
            let m = required("m", 1, MAX_DIM)?;
            optional("nbits", 1, MAX_NBITS)?;
            if let Some(dim) = dim
                && dim % m != 0
            {
                return Err(invalid(format!("dim {dim} is not a multiple of m {m}")));
            }
        }
        "HNSW" => {
            required("M", 1, MAX_HNSW_M)?;
            required("efConstruction", 1, MAX_EF_CONSTRUCTION)?;
        }
        _ => {}
    }
    Ok(())
}

fn dim_of(type_params: &[KeyValuePair]) -> IndexResult<Option<i64>> {
    type_params
        .iter()
        .find(|kv| kv.key == DIM)
        .map(|kv| int_param(DIM, &kv.value, 1, MAX_DIM))
        .transpose()
}

fn int_param(key: &str, value: &str, min: i64, max: i64) -> IndexResult<i64> {
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err(invalid(format!("{key} {n} out of range [{min}, {max}]"))),
        Err(_) => Err(invalid(format!(
            "{key} {:?} is not an integer",
            value.chars().take(64).collect::<String>()
        ))),
    }
}

fn invalid(reason: String) -> IndexError {
    IndexError::InvalidParameter(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<KeyValuePair> {
        pairs
            .iter()
            .map(|(k, v)| KeyValuePair {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    fn schema() -> CollectionSchema {
        let field =
            |field_id, name: &str, data_type: DataType, params: &[(&str, &str)]| FieldSchema {
                field_id,
                name: name.to_string(),
                data_type: data_type as i32,
                type_params: kv(params),
                ..Default::default()
            };
        CollectionSchema {
            fields: vec![
                field(100, "pk", DataType::Int64, &[]),
                field(101, "vec", DataType::FloatVector, &[("dim", "8")]),
                field(102, "tag", DataType::VarChar, &[("max_length", "64")]),
                field(103, "bin", DataType::BinaryVector, &[("dim", "16")]),
                field(104, "meta", DataType::Json, &[]),
            ],
            ..Default::default()
        }
    }

    fn request(
        field_id: i64,
        type_params: &[(&str, &str)],
        index: &[(&str, &str)],
    ) -> CreateIndexRequest {
        CreateIndexRequest {
            collection_id: 1,
            field_id,
            type_params: kv(type_params),
            index_params: kv(index),
            ..Default::default()
        }
    }

    #[test]
    fn what_the_proxy_sends_is_accepted() {
        let ok = [
            request(
                101,
                &[("dim", "8")],
                &[
                    ("index_type", "IVF_FLAT"),
                    ("metric_type", "L2"),
                    ("nlist", "16"),
                ],
            ),
            request(
                101,
                &[("dim", "8")],
                &[
                    ("index_type", "HNSW"),
                    ("metric_type", "COSINE"),
                    ("M", "8"),
                    ("efConstruction", "64"),
                ],
            ),
            request(
                101,
                &[("dim", "8")],
                &[
                    ("index_type", "IVF_PQ"),
                    ("metric_type", "IP"),
                    ("nlist", "16"),
                    ("m", "4"),
                    ("nbits", "8"),
                ],
            ),
            request(101, &[], &[("index_type", "FLAT"), ("metric_type", "l2")]),
            request(
                101,
                &[("dim", "8")],
                &[("index_type", "DISKANN"), ("metric_type", "L2")],
            ),
            request(
                103,
                &[("dim", "16")],
                &[
                    ("index_type", "BIN_IVF_FLAT"),
                    ("metric_type", "JACCARD"),
                    ("nlist", "8"),
                ],
            ),
            request(102, &[], &[("index_type", "Trie")]),
            request(102, &[], &[]),
            request(100, &[], &[("index_type", "STL_SORT")]),
        ];
        for req in ok {
            check_create_index(&req, &schema()).unwrap_or_else(|e| panic!("{req:?}: {e}"));
        }
    }

    #[test]
    fn hostile_parameters_are_rejected() {
        let bad = [
            (
                "unknown field",
                request(999, &[], &[("index_type", "FLAT")]),
            ),
            ("json field", request(104, &[], &[])),
            (
                "unknown type",
                request(
                    101,
                    &[],
                    &[("index_type", "NOT_AN_INDEX"), ("metric_type", "L2")],
                ),
            ),
            ("no type", request(101, &[], &[("metric_type", "L2")])),
            (
                "binary type on float",
                request(101, &[], &[("index_type", "BIN_FLAT")]),
            ),
            (
                "float type on binary",
                request(103, &[], &[("index_type", "IVF_SQ8"), ("nlist", "8")]),
            ),
            (
                "vector type on scalar",
                request(100, &[], &[("index_type", "HNSW"), ("M", "8")]),
            ),
            (
                "string type on number",
                request(100, &[], &[("index_type", "Trie")]),
            ),
            (
                "bad metric",
                request(
                    101,
                    &[],
                    &[("index_type", "FLAT"), ("metric_type", "BOGUS")],
                ),
            ),
            (
                "binary metric on float",
                request(
                    101,
                    &[],
                    &[("index_type", "FLAT"), ("metric_type", "HAMMING")],
                ),
            ),
            (
                "dim not a number",
                request(101, &[("dim", "abc")], &[("index_type", "FLAT")]),
            ),
            (
                "dim differs",
                request(101, &[("dim", "9")], &[("index_type", "FLAT")]),
            ),
            (
                "dim huge",
                request(101, &[("dim", "99999999")], &[("index_type", "FLAT")]),
            ),
            (
                "nlist missing",
                request(101, &[], &[("index_type", "IVF_FLAT")]),
            ),
            (
                "nlist negative",
                request(101, &[], &[("index_type", "IVF_FLAT"), ("nlist", "-1")]),
            ),
            (
                "nlist absurd",
                request(
                    101,
                    &[],
                    &[("index_type", "IVF_FLAT"), ("nlist", "1000000000000")],
                ),
            ),
            (
                "nlist text",
                request(101, &[], &[("index_type", "IVF_FLAT"), ("nlist", "x")]),
            ),
            (
                "pq m not dividing dim",
                request(
                    101,
                    &[],
                    &[("index_type", "IVF_PQ"), ("nlist", "16"), ("m", "3")],
                ),
            ),
            (
                "pq nbits",
                request(
                    101,
                    &[],
                    &[
                        ("index_type", "IVF_PQ"),
                        ("nlist", "16"),
                        ("m", "4"),
                        ("nbits", "64"),
                    ],
                ),
            ),
            (
                "hnsw M absurd",
                request(
                    101,
                    &[],
                    &[
                        ("index_type", "HNSW"),
                        ("M", "100000"),
                        ("efConstruction", "64"),
                    ],
                ),
            ),
            (
                "hnsw ef text",
                request(
                    101,
                    &[],
                    &[("index_type", "HNSW"), ("M", "8"), ("efConstruction", "x")],
                ),
            ),
            (
                "conflicting duplicate",
                request(
                    101,
                    &[("dim", "8")],
                    &[("dim", "16"), ("index_type", "FLAT")],
                ),
            ),
        ];
        for (what, req) in bad {
            let err = check_create_index(&req, &schema()).expect_err(what);
            assert!(
                matches!(err, IndexError::InvalidParameter(_)),
                "{what}: {err}"
            );
            assert_eq!(
                err.code(),
                milvus_types::ErrorCode::PARAMETER_INVALID,
                "{what}"
            );
        }
    }
}
