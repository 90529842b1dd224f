// Advanced-hunting export: one data collection rule per exported table, each declaring only that
// table's `Custom-<Table>` stream with one data flow into `<Table>_CL` (the workspace tables:
// hunting-workspace.bicep), and Monitoring Metrics Publisher on each for xdrsync's principals.
// Columns come from hunting-tables.json, generated from xdrsync's schema module (`xdrsync hunting
// schema --all --json`; tests/hunting_infra.rs fails when they differ).
//
// Documented (Azure Monitor service limits, "Data collection rules"): at most 10 data flows and
// 10 data streams per DCR. One DCR per table keeps every DCR at one of each, whatever the number
// of tables, and builds each DCR's streams without a lambda (checkov cannot parse one). Each
// DCR has its own immutable id: xdrsync routes each table's rows by it
// (XDRSYNC_HUNTING_DCR_IMMUTABLE_ID=<Table>=dcr-…,…, main.bicep). Per-DCR ingestion limits (2 GB
// and 12,000 requests a minute) then apply per table.
// The DCRs are created in the workspace's region, like ingestion.bicep's (same reason).

@description('Region of the destination Log Analytics workspace.')
param location string

@description('Name prefix for every resource.')
param prefix string

@description('ARM resource id of the Sentinel (Log Analytics) workspace.')
param workspaceResourceId string

@description('Resource id of the data collection endpoint (ingestion.bicep).')
param dataCollectionEndpointId string

@description('Advanced-hunting tables to export (names as in hunting-tables.json).')
param tables array

@description('Object ids of the principals xdrsync calls Azure as.')
param principalIds array

var schema = loadJsonContent('hunting-tables.json')
var dcrNames = [for name in tables: '${prefix}-xdrsync-hunting-${toLower(name)}']

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = [for (name, i) in tables: {
  name: dcrNames[i]
  location: location
  properties: {
    dataCollectionEndpointId: dataCollectionEndpointId
    streamDeclarations: {
      'Custom-${name}': schema.streams['Custom-${name}']
    }
    destinations: {
      logAnalytics: [{ workspaceResourceId: workspaceResourceId, name: 'sentinel' }]
    }
    dataFlows: [
      {
        streams: ['Custom-${name}']
        destinations: ['sentinel']
        transformKql: 'source'
        outputStream: 'Custom-${name}_CL'
      }
    ]
  }
}]

// Monitoring Metrics Publisher on each DCR for each principal: lets it send rows. One module per
// principal, so each of its role assignments is one loop over the DCRs.
module publishers 'hunting-publisher.bicep' = [for principalId in principalIds: {
  name: 'xdrsync-hunting-publisher-${take(uniqueString(principalId), 8)}'
  params: {
    dcrNames: dcrNames
    principalId: principalId
  }
  dependsOn: [dcr]
}]

// `<Table>=dcr-…` per table: the value of XDRSYNC_HUNTING_DCR_IMMUTABLE_ID.
output routes array = [for (name, i) in tables: '${name}=${dcr[i].properties.immutableId}']
