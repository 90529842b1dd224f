// xdrsync infrastructure: a Linux Function App (custom handler) with a system-assigned identity,
// its storage account, the Logs Ingestion pipeline (DCE + DCR in ingestion.bicep, in the
// workspace's region; XdrsyncAlerts_CL table in workspace.bicep) and the role assignments xdrsync
// needs on the DCR and the Sentinel workspace. Graph application permissions cannot be granted by
// ARM; run grant-graph-permissions.sh afterwards.

@description('Name prefix for every resource (lowercase letters and digits).')
@minLength(3)
@maxLength(12)
param prefix string

@description('Region of the Function App, its plan and storage. The DCE and DCR always go to the workspace region.')
param location string = resourceGroup().location

@description('ARM resource id of the Sentinel (Log Analytics) workspace.')
param workspaceResourceId string

@description('Entra tenant of the Defender XDR tenant to sync.')
param defenderTenantId string = tenant().tenantId

@description('6-field NCRONTAB schedule of the Defender poller and Sentinel sweep.')
param pollSchedule string = '*/30 * * * * *'

@description('Conflict policy: latest-wins, defender-wins or sentinel-wins.')
@allowed(['latest-wins', 'defender-wins', 'sentinel-wins'])
param conflictPolicy string = 'latest-wins'

@description('Shared secret the Sentinel playbook sends as x-xdrsync-key (at least 16 characters).')
@secure()
@minLength(16)
param webhookKey string

@description('Advanced-hunting tables to export into <Table>_CL (e.g. DeviceProcessEvents), at most 10; empty: none. Also set XDRSYNC_HUNTING_TABLES.')
@maxLength(10)
param huntingTables string[] = []

var workspaceParts = split(workspaceResourceId, '/')
var workspaceSubscription = workspaceParts[2]
var workspaceGroup = workspaceParts[4]
var workspaceName = workspaceParts[8]
var streamName = 'Custom-XdrsyncAlerts'
var tableName = 'XdrsyncAlerts_CL'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: '${prefix}xdrsync${uniqueString(resourceGroup().id)}'
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
  }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${prefix}-xdrsync-plan'
  location: location
  sku: { name: 'Y1', tier: 'Dynamic' }
  kind: 'functionapp'
  properties: { reserved: true }
}

module table 'workspace.bicep' = {
  name: 'xdrsync-workspace'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    tableName: tableName
    principalId: app.identity.principalId
  }
}

// The Sentinel workspace, read for its region: the DCE and the DCR must be in it (ingestion.bicep).
resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
}

// Advanced-hunting export: the <Table>_CL tables (hunting-workspace.bicep); their DCR is in ingestion.bicep.
module huntingWorkspace 'hunting-workspace.bicep' = if (!empty(huntingTables)) {
  name: 'xdrsync-hunting-workspace'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    tables: huntingTables
  }
}

module ingestion 'ingestion.bicep' = {
  name: 'xdrsync-ingestion'
  dependsOn: [table, huntingWorkspace]
  params: {
    location: workspace.location
    prefix: prefix
    workspaceResourceId: workspaceResourceId
    streamName: streamName
    tableName: tableName
    columns: alertColumns
    principalId: app.identity.principalId
    appResourceId: app.id
    huntingTables: huntingTables
  }
}

// Columns of the alert stream the DCR declares; workspace.bicep declares the same for the table.
var alertColumns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'SystemAlertId', type: 'string' }
  { name: 'AlertName', type: 'string' }
  { name: 'DisplayName', type: 'string' }
  { name: 'Description', type: 'string' }
  { name: 'AlertSeverity', type: 'string' }
  { name: 'ProductName', type: 'string' }
  { name: 'ProductComponentName', type: 'string' }
  { name: 'ProviderName', type: 'string' }
  { name: 'VendorName', type: 'string' }
  { name: 'VendorOriginalId', type: 'string' }
  { name: 'Status', type: 'string' }
  { name: 'StartTime', type: 'datetime' }
  { name: 'EndTime', type: 'datetime' }
  { name: 'ProcessingEndTime', type: 'datetime' }
  { name: 'AlertLink', type: 'string' }
  { name: 'RemediationSteps', type: 'string' }
  { name: 'Tactics', type: 'string' }
  { name: 'Techniques', type: 'string' }
  { name: 'CompromisedEntity', type: 'string' }
  { name: 'Entities', type: 'string' }
  { name: 'EntitiesOmitted', type: 'int' } // entities left out of Entities to stay under the 64 KB field limit; absent when none
  { name: 'ExtendedProperties', type: 'string' }
  { name: 'IsIncident', type: 'boolean' }
  { name: 'DefenderTenantId', type: 'string' }
  { name: 'DefenderIncidentId', type: 'string' }
  { name: 'SentinelIncidentName', type: 'string' }
  { name: 'AlertLastUpdateDateTime', type: 'datetime' }
  { name: 'RowKey', type: 'string' }
  { name: 'RowDigest', type: 'string' } // content digest: copies of one version share it
]

resource app 'Microsoft.Web/sites@2023-12-01' = {
  name: '${prefix}-xdrsync'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: ''
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    FUNCTIONS_EXTENSION_VERSION: '~4'
    FUNCTIONS_WORKER_RUNTIME: 'custom'
    AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
    XDRSYNC_TENANT_ID: defenderTenantId
    XDRSYNC_WORKSPACE_RESOURCE_ID: workspaceResourceId
    XDRSYNC_LOGS_INGESTION_ENDPOINT: ingestion.outputs.logsIngestionEndpoint
    XDRSYNC_DCR_IMMUTABLE_ID: ingestion.outputs.dcrImmutableId
    XDRSYNC_ALERTS_STREAM: streamName
    XDRSYNC_POLL_SCHEDULE: pollSchedule
    // HuntingExport's timer reads %XDRSYNC_HUNTING_SCHEDULE%: the setting must exist (every 5 minutes).
    XDRSYNC_HUNTING_SCHEDULE: '0 */5 * * * *'
    XDRSYNC_HUNTING_TABLES: join(huntingTables, ',')
    XDRSYNC_HUNTING_DCR_IMMUTABLE_ID: empty(huntingTables) ? '' : ingestion.outputs.huntingDcrImmutableId
    XDRSYNC_CONFLICT_POLICY: conflictPolicy
    XDRSYNC_WEBHOOK_KEY: webhookKey
  }
}

output functionAppName string = app.name
output principalId string = app.identity.principalId
output webhookUrl string = 'https://${app.properties.defaultHostName}/api/sentinel/incidents'
output dcrImmutableId string = ingestion.outputs.dcrImmutableId
