// Advanced-hunting export: a data collection rule with one `Custom-<Table>` stream and data flow
// per exported table into `<Table>_CL` (the workspace tables: hunting-workspace.bicep), and
// Monitoring Metrics Publisher on it for xdrsync's identity. Columns come from
// hunting-tables.json, generated from xdrsync's schema module (`xdrsync hunting schema --all
// --json`; tests/hunting_infra.rs fails when they differ). The DCR declares every table's stream
// (a static object: building one in a loop needs a lambda, which checkov cannot parse; assumed:
// a declared stream without a data flow is accepted) and a data flow for each exported table.
// A separate DCR from the alerts one:
// a DCR holds a limited number of data flows (10, per Azure Monitor's service limits as we read
// them; assumed), so deploy at most 10 tables per instance of this module.
// The DCR is created in the workspace's region, like ingestion.bicep's (same reason).

@description('Region of the destination Log Analytics workspace.')
param location string

@description('Name prefix for every resource.')
param prefix string

@description('ARM resource id of the Sentinel (Log Analytics) workspace.')
param workspaceResourceId string

@description('Resource id of the data collection endpoint (ingestion.bicep).')
param dataCollectionEndpointId string

@description('Advanced-hunting tables to export (names as in hunting-tables.json), at most 10.')
@maxLength(10)
param tables array

@description('Object id of the Function App identity.')
param principalId string

@description('Resource id of the Function App: part of the role assignment name.')
param appResourceId string

var schema = loadJsonContent('hunting-tables.json')
var flows = [for name in tables: {
  streams: ['Custom-${name}']
  destinations: ['sentinel']
  transformKql: 'source'
  outputStream: 'Custom-${name}_CL'
}]
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: '${prefix}-xdrsync-hunting-dcr'
  location: location
  properties: {
    dataCollectionEndpointId: dataCollectionEndpointId
    streamDeclarations: schema.streams
    destinations: {
      logAnalytics: [{ workspaceResourceId: workspaceResourceId, name: 'sentinel' }]
    }
    dataFlows: flows
  }
}

// Monitoring Metrics Publisher on the DCR: lets the identity send rows.
resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dcr.id, appResourceId, 'publisher')
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output dcrImmutableId string = dcr.properties.immutableId
