//! Status resources written by the speakers and the controller: which node announces
//! a Service (`ServiceL2Status`, `ServiceBGPStatus`) and whether a component's
//! configuration is valid (`ConfigurationState`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ServiceL2Status` has no desired state: the spec is empty.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "MetalLBServiceL2Status",
    derive = "PartialEq",
    doc = "Which node announces a Service in layer 2 mode, and on which interfaces.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// Observed state of a ServiceL2Status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceL2Status {
    /// The node announcing the Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// Namespace of the Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// Interfaces the Service's addresses are answered on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// An interface, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct InterfaceInfo {
    /// The interface name.
    #[serde(default)]
    pub name: String,
}

/// `ServiceBGPStatus` has no desired state: the spec is empty.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    namespaced,
    status = "MetalLBServiceBGPStatus",
    derive = "PartialEq",
    doc = "Which BGP peers a node announces a Service to.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// Observed state of a ServiceBGPStatus.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceBGPStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// Namespace of the Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// BGPPeer names the Service is announced to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// `ConfigurationState` has no desired state: the spec is empty.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    plural = "configurationstates",
    namespaced,
    status = "ConfigurationStateStatus",
    derive = "PartialEq",
    doc = "Whether a component's view of the configuration is valid.",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(
        name = "ErrorSummary",
        type_ = "string",
        json_path = ".status.errorSummary"
    )
)]
pub struct ConfigurationStateSpec {}

/// Observed state of a ConfigurationState.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// `Valid`, `Invalid` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result: String,
    /// The problems found, when invalid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_summary: String,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
