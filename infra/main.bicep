// xdrsync infrastructure, deployed into one resource group:
// - a Linux Function App running the xdrsync custom handler, on the Flex Consumption plan (FC1, the
//   default; its runtime list includes `custom`) or the Linux Consumption plan (Y1, retiring on
//   30 September 2028), with a user-assigned managed identity: the one principal xdrsync calls
//   Azure as (ARM, Logs Ingestion, Log Analytics, Storage, Key Vault references), whatever
//   credential Graph uses; every role below is assigned to it (and to `credentialPrincipalId`,
//   the principal of a secret, when given);
// - its storage account, reached by identity only (AzureWebJobsStorage__accountName; no shared key
//   where the plan allows: Flex), with Storage Blob/Queue/Table Data roles;
// - Application Insights (workspace-based) for the host's telemetry and xdrsync's log lines;
// - Key Vault holding the webhook key and, when used, the client secret; app settings reference
//   them (@Microsoft.KeyVault(SecretUri=…)). The Functions key the playbook calls with is step 2,
//   after publishing (function-key.bicep): nothing here needs published code, so this template
//   succeeds on an empty resource group;
// - the Logs Ingestion pipeline (DCE + DCR in ingestion.bicep, in the workspace's region;
//   XdrsyncAlerts_CL table and the Sentinel Responder role in workspace.bicep);
// - the Sentinel playbook (playbook.bicep) and automation rules (automation.bicep) that POST every
//   created or updated mirror to the webhook.
// Graph application permissions cannot be granted by ARM: run grant-graph-permissions.sh afterwards.
// The federated identity credential that lets the multi-tenant app registration trust the
// identity (clientId without clientSecret) is an `az ad app federated-credential create` step
// (operations.md, "Deploy"): the Microsoft Graph Bicep extension can declare one
// (Microsoft.Graph/applications/federatedIdentityCredentials), but it is in preview, public cloud
// only, needs the app registration onboarded with a uniqueName, and the deploying user would need
// Application.ReadWrite.All in the home tenant.
// There is no Bicep compiler in this repository's CI: the files keep to syntax checkov parses, and
// tests/infra.rs and tests/infra_settings.rs check them statically.

@description('Name prefix for every resource (lowercase letters and digits).')
@minLength(3)
@maxLength(12)
param prefix string

@description('Region of the Function App, its plan, storage, Key Vault, Application Insights and playbook. The DCE and DCR always go to the workspace region.')
param location string = resourceGroup().location

@description('ARM resource id of the Sentinel (Log Analytics) workspace.')
param workspaceResourceId string

@description('Hosting plan: FlexConsumption (FC1, default) or Consumption (Linux Y1, retiring 30 September 2028).')
@allowed(['FlexConsumption', 'Consumption'])
param hostingPlan string = 'FlexConsumption'

@description('Most instances the app may scale out to. xdrsync\'s call budgets are per instance (see operations.md, "Scale-out and call budgets"). Flex Consumption accepts 40 to 1000 (its lowest is 40); Linux Consumption takes min(this, 100).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption instance memory (MB). xdrsync needs well under 512 MB; 2048 is the plan\'s default size.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Entra tenant of the Defender XDR tenant to sync.')
param defenderTenantId string = tenant().tenantId

@description('6-field NCRONTAB schedule of the Defender poller and Sentinel sweep (must not be empty: the timer binding reads it).')
@minLength(11)
param pollSchedule string = '*/30 * * * * *'

@description('Conflict policy: latest-wins, defender-wins or sentinel-wins.')
@allowed(['latest-wins', 'defender-wins', 'sentinel-wins'])
param conflictPolicy string = 'latest-wins'

@description('XDRSYNC_TARGET: sentinel (Sentinel incidents, Azure portal experience) or defender-portal (the workspace tenant\'s own Defender incidents, for workspaces onboarded to the Defender portal; see docs/unified-portal.md).')
@allowed(['sentinel', 'defender-portal'])
param target string = 'sentinel'

@description('Shared secret the Sentinel playbook sends as x-xdrsync-key (at least 16 characters). Stored in Key Vault.')
@secure()
@minLength(16)
param webhookKey string

@description('XDRSYNC_CLIENT_ID: the (multi-tenant) app registration Graph calls use. Empty: the app\'s identity holds the Graph roles (one tenant). Given without clientSecret: federated, the registration trusts the app\'s identity (no secret; many tenants; docs/identity.md). Given with clientSecret: that secret. Azure calls always use the identity.')
param clientId string = ''

@description('The app registration\'s client secret (stored in Key Vault); empty: no secret (managed identity or federated).')
@secure()
param clientSecret string = ''

@description('Object id of another principal xdrsync may call Azure as (a service principal with a secret or certificate, to run xdrsync outside Azure): every role is assigned to it as well. Empty: only the app\'s identity.')
param credentialPrincipalId string = ''

@description('Sovereign cloud: public, usgov or usgovdod (sets xdrsync\'s endpoints and token scopes).')
@allowed(['public', 'usgov', 'usgovdod'])
param cloud string = 'public'

@description('Object id of the "Azure Security Insights" service principal in this tenant (docs/operations.md, Deploy, shows the command that finds it). It gets Microsoft Sentinel Automation Contributor on this resource group, so the automation rules may run the playbook: without the role they would deploy and never run it, so it is required (no default; checkov cannot parse Bicep\'s fail(), which could make it required only with deployPlaybook).')
@minLength(36)
param sentinelAutomationPrincipalId string

@description('Deploy the playbook and the automation rules (when incident created/updated, run playbook).')
param deployPlaybook bool = true

@description('Order of the automation rules among the workspace\'s rules (1-1000). Rules run in order; a later rule still runs, so xdrsync\'s can come last.')
@minValue(1)
@maxValue(1000)
param automationRuleOrder int = 1000

// Optional xdrsync settings: empty means xdrsync's own default (README, "Configuration").
@description('XDRSYNC_GRAPH_CALLS_PER_MINUTE: Graph budget per instance; empty = 120.')
param graphCallsPerMinute string = ''
@description('XDRSYNC_ARM_WRITES_PER_SECOND: refill of the Sentinel write budget per instance; empty = 8.')
param armWritesPerSecond string = ''
@description('XDRSYNC_ARM_WRITE_BURST: size of the Sentinel write budget per instance; empty = 150 (ARM allows 200).')
param armWriteBurst string = ''
@description('XDRSYNC_INITIAL_LOOKBACK_HOURS: how far back the first poll reaches; empty = 720.')
param initialLookbackHours string = ''
@description('XDRSYNC_POLL_TIME_BUDGET_SECONDS: a poll stops walking backfill windows after this; empty = 240 (well under functionTimeout).')
param pollTimeBudgetSeconds string = ''
@description('XDRSYNC_POLL_OVERLAP_SECONDS: each poll re-reads this much; empty = 120.')
param pollOverlapSeconds string = ''
@description('XDRSYNC_RETRY_SCHEDULE_SECONDS: delays before retrying a failed incident; empty = 60,300,1800,10800.')
param retryScheduleSeconds string = ''
@description('XDRSYNC_MIRROR_SENTINEL_INCIDENTS: mirror Defender incidents made only of Sentinel alerts; empty = false.')
param mirrorSentinelIncidents string = ''

@description('XDRSYNC_ALERT_RULES: native-alerts analytics rules (shards), 1 to 40; each adds 14 alerts/min to the ceiling (docs/native-alerts.md).')
@minValue(1)
@maxValue(40)
param alertRules int = 10

@description('XDRSYNC_DEFENDER_TENANTS: many Defender tenants into this workspace, tenantId[=display name],… (needs the app registration and its secret); empty = the one tenant.')
param defenderTenants string = ''

@description('XDRSYNC_TENANT_WORKSPACES: tenants routed to other workspaces, tenantId=workspaceResourceId[|dcr-…[|https://dce-endpoint]],…; empty = all to this workspace.')
param tenantWorkspaces string = ''
@description('XDRSYNC_USER_CACHE_HOURS: UPN to objectId cache lifetime; empty = 24.')
param userCacheHours string = ''
@description('XDRSYNC_HTTP_TIMEOUT_SECONDS: per request; empty = 30.')
param httpTimeoutSeconds string = ''
@description('XDRSYNC_MAX_BATCH_BYTES: Logs Ingestion request size before gzip; empty = 1000000.')
param maxBatchBytes string = ''
@description('XDRSYNC_TABLE_PREFIX: table name prefix; empty = xdrsync.')
param tablePrefix string = ''
@description('RUST_LOG: log filter; empty = info.')
param logFilter string = ''

var isFlex = hostingPlan == 'FlexConsumption'
@description('Advanced-hunting tables to export into <Table>_CL (e.g. DeviceProcessEvents); empty: none. Sets XDRSYNC_HUNTING_TABLES (query source) and creates the tables and one DCR per table (hunting.bicep).')
param huntingTables array = []
@description('XDRSYNC_HUNTING_SCHEDULE: NCRONTAB of the hunting timers (every 5 minutes).')
param huntingSchedule string = '0 */5 * * * *'
@description('XDRSYNC_HUNTING_DELAY_SECONDS: empty = 300.')
param huntingDelaySeconds string = ''
@description('XDRSYNC_HUNTING_LOOKBACK_MINUTES: where a table\'s first run starts; empty = 60.')
param huntingLookbackMinutes string = ''
@description('XDRSYNC_HUNTING_PAGE_ROWS: rows per runHuntingQuery call; empty = 10000.')
param huntingPageRows string = ''
@description('XDRSYNC_HUNTING_CALLS_PER_MINUTE: runHuntingQuery budget; empty = 40.')
param huntingCallsPerMinute string = ''
@description('XDRSYNC_HUNTING_STORAGE_TABLES: tables read from the Streaming API\'s storage account (their <Table>_CL must be in huntingTables too).')
param huntingStorageTables array = []
@description('XDRSYNC_HUNTING_STORAGE_CONNECTION: that account\'s blob endpoint (https://<account>.blob.core.windows.net), read with the app\'s identity (grant Storage Blob Data Reader).')
param huntingStorageBlobEndpoint string = ''
@description('XDRSYNC_HUNTING_EVENTHUB_NAME: the Event Hub the Streaming API writes to (HuntingEventHub, shipped with package --event-hub).')
param huntingEventHubName string = 'xdrsync-advancedhunting'

var workspaceParts = split(workspaceResourceId, '/')
var workspaceSubscription = workspaceParts[2]
var workspaceGroup = workspaceParts[4]
var workspaceName = workspaceParts[8]
var streamName = 'Custom-XdrsyncAlerts'
var tableName = 'XdrsyncAlerts_CL'
// Native alerts' trigger rows (docs/native-alerts.md): their own table and stream, in the same DCR.
var triggerStreamName = 'Custom-XdrsyncAlertTriggers'
var triggerTableName = 'XdrsyncAlertTriggers_CL'
var triggerColumns = loadJsonContent('alert-trigger-columns.json')
var appName = '${prefix}-xdrsync'
var deploymentContainer = 'app-package'

// The principal xdrsync calls Azure as. User-assigned, so it exists before the app (roles are in
// place when the app first starts) and can be the subject of the app registration's federated
// identity credential (Entra: "Configure an application to trust a managed identity" supports
// user-assigned identities).
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-xdrsync-id'
  location: location
}

// Every role is assigned to each of these (tests/infra.rs checks each role assignment's principal).
var rolePrincipals = empty(credentialPrincipalId) ? [identity.properties.principalId] : [identity.properties.principalId, credentialPrincipalId]


module table 'workspace.bicep' = {
  name: 'xdrsync-workspace'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    tableName: tableName
    principalIds: rolePrincipals
  }
}

// Native alerts on mirrors: the analytics rule and Log Analytics Reader (alert-rule.bicep). After
// the table: Sentinel refuses a rule whose query names a table that does not exist yet. Should
// the table still be unknown to the query engine when the rule is created, deploying again a few
// minutes later creates it (operations.md, "Deploy").
module alertRule 'alert-rule.bicep' = {
  name: 'xdrsync-alert-rule'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    tableName: triggerTableName
    ruleCount: alertRules
    principalIds: rolePrincipals
  }
  dependsOn: [table, triggerTable]
}

// The trigger table the rules read; created before them (a rule over a missing table is refused).
module triggerTable 'trigger-table.bicep' = {
  name: 'xdrsync-trigger-table'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    tableName: triggerTableName
    columns: triggerColumns
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
  dependsOn: [table, triggerTable, huntingWorkspace]
  params: {
    location: workspace.location
    prefix: prefix
    workspaceResourceId: workspaceResourceId
    streamName: streamName
    tableName: tableName
    columns: alertColumns
    triggerStreamName: triggerStreamName
    triggerTableName: triggerTableName
    triggerColumns: triggerColumns
    principalIds: rolePrincipals
    huntingTables: huntingTables
  }
}

// Columns of the alert stream the DCR declares (alert-columns.json, which the simulator's Logs
// Ingestion reads too); workspace.bicep declares the same for the table. `EntitiesOmitted` counts
// entities left out of `Entities` to stay under the 64 KB field limit (absent when none);
// `RowDigest` is the content digest (copies of one version share it); the `Entity*` columns are
// the flattened entities the analytics rule maps (absent when the alert has none).
var alertColumns = loadJsonContent('alert-columns.json')

module storage 'storage.bicep' = {
  name: 'xdrsync-storage'
  params: {
    location: location
    prefix: prefix
    sharedKeyAccess: !isFlex
    deploymentContainer: deploymentContainer
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy needs a plan with always-on instances; xdrsync loses nothing during a zone outage (cursors and queue resume).
  name: '${prefix}-xdrsync-plan'
  location: location
  sku: isFlex ? { name: 'FC1', tier: 'FlexConsumption' } : { name: 'Y1', tier: 'Dynamic' }
  kind: 'functionapp'
  properties: { reserved: true }
}

// Application Insights, workspace-based, in its own small Log Analytics workspace: the host's
// requests, dependencies and traces (xdrsync's JSON log lines among them) do not land in, and are
// not billed as, Sentinel data.
resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${prefix}-xdrsync-logs'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-xdrsync-insights'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: false
  }
}

// Flex Consumption (functionAppConfig below). Documented: the runtime name `custom` is in the plan's
// runtime list; maximumInstanceCount 40 to 1000 (Microsoft's Flex samples); deployment storage
// authentication `SystemAssignedIdentity`. Assumed: the version string of `custom` is '1.0' (check
// with `az functionapp list-flexconsumption-runtimes --location <region> --runtime custom`).
resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_56: no Entra authentication (Easy Auth) in front of the app: the playbook calls the webhook with the Functions key and x-xdrsync-key, which xdrsync checks.
  // checkov:skip=CKV_AZURE_17: no client certificates: the Logic App HTTP action authenticates with the Functions key and x-xdrsync-key.
  // checkov:skip=CKV_AZURE_221: public network access stays on: the playbook (Logic App) must reach the webhook; with Flex Consumption you may add VNet integration and restrict it.
  // checkov:skip=CKV_AZURE_222: public network access stays on so the playbook can reach the webhook (as CKV_AZURE_221).
  // checkov:skip=CKV_AZURE_212: serverless plans scale from zero; one poller instance runs at a time by design.
  // checkov:skip=CKV_AZURE_213: App Service health check is not available on the Consumption plans; monitor GET /api/health instead (operations.md).
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity (the default is system-assigned).
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Linux Consumption takes its scale-out limit here; Flex Consumption takes it in
      // functionAppConfig.scaleAndConcurrency (null leaves the property out).
      functionAppScaleLimit: isFlex ? null : min(maximumInstanceCount, 100)
    }
    // Flex Consumption only: the runtime (custom handler), where `func publish` uploads the
    // package (a blob container reached with the app's identity), and the scale-out limit.
    functionAppConfig: isFlex ? {
      runtime: { name: 'custom', version: '1.0' }
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.outputs.blobEndpoint}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    } : null
  }
}

module vault 'keyvault.bicep' = {
  name: 'xdrsync-keyvault'
  params: {
    location: location
    prefix: prefix
    webhookKey: webhookKey
    clientSecret: clientSecret
    appPrincipalIds: rolePrincipals
  }
}

// Storage Blob Data Owner, Queue Data Contributor, Table Data Contributor for xdrsync's principals: the host
// keeps its keys, leases and timer state in blobs and reads the queue; xdrsync keeps its state in
// tables and enqueues work (Learn: "Connecting to host storage with an identity").
module storageRoles 'storage-roles.bicep' = {
  name: 'xdrsync-storage-roles'
  params: {
    storageName: storage.outputs.name
    principalIds: rolePrincipals
  }
}

// Settings only the Linux Consumption plan takes; Flex Consumption rejects them (its runtime is
// functionAppConfig.runtime, its host version fixed, its package in functionAppConfig.deployment).
// Linux Consumption runs the app from a package blob the host fetches with the app's identity (a
// URL without SAS; Storage Blob Data Owner): deployment tools that need an AzureWebJobsStorage
// connection string cannot publish to an identity-only app, so operations.md uploads the zip to
// this blob instead. With a user-assigned identity the host needs its resource id for that fetch
// (Learn, "Run your functions from a package file": WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID). Being in the template, the setting survives redeployments (the appsettings
// resource replaces every setting).
var consumptionSettings = {
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  FUNCTIONS_EXTENSION_VERSION: '~4'
  WEBSITE_RUN_FROM_PACKAGE: '${storage.outputs.blobEndpoint}${deploymentContainer}/xdrsync.zip'
  WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: identity.id
}

// Every setting xdrsync reads is here (tests/infra_settings.rs checks both directions against
// config_audit.rs KNOWN_SETTINGS); an empty value means xdrsync's default.
var appSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  // The host reaches its storage with the user-assigned identity (Learn, "Connecting to host
  // storage with an identity": credential managedidentity plus the identity's clientId).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
  XDRSYNC_TENANT_ID: defenderTenantId
  XDRSYNC_CLIENT_ID: clientId
  XDRSYNC_CLIENT_SECRET: empty(clientSecret) ? '' : '@Microsoft.KeyVault(SecretUri=${vault.outputs.clientSecretUri})'
  XDRSYNC_MANAGED_IDENTITY_CLIENT_ID: identity.properties.clientId
  XDRSYNC_CLOUD: cloud
  XDRSYNC_WORKSPACE_RESOURCE_ID: workspaceResourceId
  XDRSYNC_LOGS_INGESTION_ENDPOINT: ingestion.outputs.logsIngestionEndpoint
  XDRSYNC_DCR_IMMUTABLE_ID: ingestion.outputs.dcrImmutableId
  XDRSYNC_DCR_RESOURCE_ID: ingestion.outputs.dcrResourceId // check proves Telemetry/Write on it
  XDRSYNC_ALERTS_STREAM: streamName
  XDRSYNC_ALERT_TRIGGERS_STREAM: triggerStreamName
  XDRSYNC_POLL_SCHEDULE: pollSchedule
  XDRSYNC_CONFLICT_POLICY: conflictPolicy
  XDRSYNC_TARGET: target
  XDRSYNC_WEBHOOK_KEY: '@Microsoft.KeyVault(SecretUri=${vault.outputs.webhookKeyUri})'
  XDRSYNC_GRAPH_CALLS_PER_MINUTE: graphCallsPerMinute
  XDRSYNC_ARM_WRITES_PER_SECOND: armWritesPerSecond
  XDRSYNC_ARM_WRITE_BURST: armWriteBurst
  XDRSYNC_INITIAL_LOOKBACK_HOURS: initialLookbackHours
  XDRSYNC_POLL_TIME_BUDGET_SECONDS: pollTimeBudgetSeconds
  XDRSYNC_POLL_OVERLAP_SECONDS: pollOverlapSeconds
  XDRSYNC_RETRY_SCHEDULE_SECONDS: retryScheduleSeconds
  XDRSYNC_MIRROR_SENTINEL_INCIDENTS: mirrorSentinelIncidents
  XDRSYNC_DEFENDER_TENANTS: defenderTenants
  XDRSYNC_TENANT_WORKSPACES: tenantWorkspaces
  XDRSYNC_USER_CACHE_HOURS: userCacheHours
  XDRSYNC_HTTP_TIMEOUT_SECONDS: httpTimeoutSeconds
  XDRSYNC_MAX_BATCH_BYTES: maxBatchBytes
  XDRSYNC_TABLE_PREFIX: tablePrefix
  XDRSYNC_ATTACH_ALERTS: 'true' // native alerts on mirrors (alert-rule.bicep)
  XDRSYNC_ALERT_RULES: string(alertRules) // as many shards as rules deployed
  XDRSYNC_WORKSPACE_ID: alertRule.outputs.workspaceId
  // Advanced-hunting export (README, "Advanced hunting export"). HuntingExport's and
  // HuntingStorageExport's timers read %XDRSYNC_HUNTING_SCHEDULE%: it must exist.
  XDRSYNC_HUNTING_TABLES: join(huntingTables, ',')
  XDRSYNC_HUNTING_SCHEDULE: huntingSchedule
  XDRSYNC_HUNTING_DELAY_SECONDS: huntingDelaySeconds
  XDRSYNC_HUNTING_LOOKBACK_MINUTES: huntingLookbackMinutes
  XDRSYNC_HUNTING_PAGE_ROWS: huntingPageRows
  XDRSYNC_HUNTING_CALLS_PER_MINUTE: huntingCallsPerMinute
  XDRSYNC_HUNTING_DCR_IMMUTABLE_ID: ingestion.outputs.huntingRoutes // <Table>=dcr-…, one DCR per table
  XDRSYNC_HUNTING_STORAGE_TABLES: join(huntingStorageTables, ',')
  XDRSYNC_HUNTING_STORAGE_CONNECTION: huntingStorageBlobEndpoint
  XDRSYNC_HUNTING_EVENTHUB_NAME: huntingEventHubName
  RUST_LOG: logFilter
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: app settings, not an auth setting: see CKV_AZURE_56 on the app.
  // checkov:skip=CKV_AZURE_63: HTTP logging is an App Service web server feature; the Functions host logs requests to Application Insights.
  // checkov:skip=CKV_AZURE_65: detailed error pages: as CKV_AZURE_63; xdrsync answers JSON errors itself.
  // checkov:skip=CKV_AZURE_66: failed request tracing: as CKV_AZURE_63.
  // checkov:skip=CKV_AZURE_80: no .NET: the app is a custom handler (a Rust binary).
  // checkov:skip=CKV_AZURE_88: no Azure Files content share: Flex Consumption deploys to a blob container, Linux Consumption runs from a package.
  // checkov:skip=CKV_AZURE_222: public network access is set on the app, which keeps it on for the playbook.
  parent: app
  name: 'appsettings'
  properties: isFlex ? appSettings : union(appSettings, consumptionSettings)
  dependsOn: [storageRoles]
}

module playbook 'playbook.bicep' = if (deployPlaybook) {
  name: 'xdrsync-playbook'
  params: {
    location: location
    prefix: prefix
    webhookUrl: 'https://${app.properties.defaultHostName}/api/sentinel/incidents'
    vaultUri: vault.outputs.vaultUri
    vaultName: vault.outputs.name
    sentinelAutomationPrincipalId: sentinelAutomationPrincipalId
  }
}

module automation 'automation.bicep' = if (deployPlaybook) {
  name: 'xdrsync-automation'
  scope: resourceGroup(workspaceSubscription, workspaceGroup)
  params: {
    workspaceName: workspaceName
    playbookResourceId: deployPlaybook ? playbook.outputs.playbookId : ''
    playbookPrincipalId: deployPlaybook ? playbook.outputs.principalId : ''
    order: automationRuleOrder
  }
}

output functionAppName string = app.name
// The identity every role is assigned to: grant-graph-permissions.sh takes it (managed-identity),
// and the federated identity credential names it as subject (federated).
output principalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output identityName string = identity.name
output playbookName string = deployPlaybook ? playbook.outputs.playbookName : ''
output webhookUrl string = 'https://${app.properties.defaultHostName}/api/sentinel/incidents'
output healthUrl string = 'https://${app.properties.defaultHostName}/api/health'
output dcrImmutableId string = ingestion.outputs.dcrImmutableId
output keyVaultName string = vault.outputs.name
output applicationInsightsName string = insights.name
