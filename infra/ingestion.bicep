// The Logs Ingestion pipeline, in the Function App's resource group: the data collection endpoint
// (DCE), the data collection rule (DCR) that sends the alert stream to the workspace table, and
// Monitoring Metrics Publisher on the DCR for each of xdrsync's principals.
//
// The DCE and the DCR are created in the workspace's region, whatever the Function App's: the
// DCE's logs ingestion endpoint must be in the same region as the destination Log Analytics
// workspace (Learn, "Data collection endpoints in Azure Monitor", Components of a DCE), and the
// DCR's region must match the workspace's and the DCE's (Learn, "Logs Ingestion API in Azure
// Monitor", Data collection rule). main.bicep passes the workspace's own location as `location`:
// a module parameter may take an existing resource's location, a resource's `location` may not
// (it needs reference(), which ARM allows only inside `properties`; Bicep reports BCP120,
// Azure/bicep#1988).

@description('Region of the destination Log Analytics workspace (main.bicep passes its location).')
param location string

@description('Name prefix for every resource.')
param prefix string

@description('ARM resource id of the Sentinel (Log Analytics) workspace.')
param workspaceResourceId string

@description('DCR input stream the alert rows are sent to.')
param streamName string

@description('Destination table in the workspace (created by workspace.bicep).')
param tableName string

@description('Columns of the input stream.')
param columns array

@description('DCR input stream of the native alerts\' trigger rows (same DCR as the alert rows).')
param triggerStreamName string

@description('The trigger table (created by trigger-table.bicep).')
param triggerTableName string

@description('Columns of the trigger stream (alert-trigger-columns.json).')
param triggerColumns array

@description('Object ids of the principals xdrsync calls Azure as.')
param principalIds array

@description('Advanced-hunting tables to export (hunting.bicep); empty: no hunting DCR.')
param huntingTables array = []

var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
var monitoringReaderRoleId = '43d0d8ad-25c7-4714-9337-8ba259a9fe05' // Monitoring Reader

resource dce 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {
  name: '${prefix}-xdrsync-dce'
  location: location
  properties: { networkAcls: { publicNetworkAccess: 'Enabled' } }
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: '${prefix}-xdrsync-dcr'
  location: location
  properties: {
    dataCollectionEndpointId: dce.id
    streamDeclarations: {
      '${streamName}': { columns: columns }
      '${triggerStreamName}': { columns: triggerColumns }
    }
    destinations: {
      logAnalytics: [{ workspaceResourceId: workspaceResourceId, name: 'sentinel' }]
    }
    dataFlows: [
      {
        streams: [streamName]
        destinations: ['sentinel']
        transformKql: 'source'
        outputStream: 'Custom-${tableName}'
      }
      {
        streams: [triggerStreamName]
        destinations: ['sentinel']
        transformKql: 'source'
        outputStream: 'Custom-${triggerTableName}'
      }
    ]
  }
}

// Monitoring Metrics Publisher on the DCR: lets the identity send rows.
resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(dcr.id, principalId, 'publisher')
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Monitoring Reader on the DCR: lets `xdrsync check` find it in ARM's DCR list by its immutable
// id (an ARM list shows only what the caller may read; the publisher role has no read action).
resource dcrReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(dcr.id, principalId, 'reader')
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output logsIngestionEndpoint string = dce.properties.logsIngestion.endpoint
output dcrImmutableId string = dcr.properties.immutableId
output dcrResourceId string = dcr.id

// Advanced-hunting export: one DCR per table on this DCE (hunting.bicep).
module hunting 'hunting.bicep' = if (!empty(huntingTables)) {
  name: 'xdrsync-hunting'
  params: {
    location: location
    prefix: prefix
    workspaceResourceId: workspaceResourceId
    dataCollectionEndpointId: dce.id
    tables: huntingTables
    principalIds: principalIds
  }
}

// `<Table>=dcr-…,…`: XDRSYNC_HUNTING_DCR_IMMUTABLE_ID; empty without hunting tables.
output huntingRoutes string = empty(huntingTables) ? '' : join(hunting.outputs.routes, ',')
