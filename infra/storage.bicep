// The Function App's storage account: host state (keys, leases, timers in blobs; the work queue)
// and xdrsync's tables. Everything reaches it with the app's identity (AzureWebJobsStorage__accountName);
// shared-key access is off on Flex Consumption. On Linux Consumption it stays on for the operator
// package upload (`az storage blob upload --auth-mode key`); the app itself never uses a key.

param location string
param prefix string

@description('Allow shared-key (account key and SAS) access: off on Flex Consumption, on for the Linux Consumption package upload.')
param sharedKeyAccess bool

@description('Blob container Flex Consumption deploys the app package into.')
param deploymentContainer string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is built from prefix (3-12 lowercase letters and digits), xs and 10 characters of uniqueString: 3-24 lowercase letters and digits.
  // checkov:skip=CKV_AZURE_206: the account holds only sync state that xdrsync rebuilds from both services (reconcile); LRS is deliberate.
  // checkov:skip=CKV_AZURE_59: the Functions host (Consumption plans have no fixed outbound addresses) and xdrsync reach the account over its public endpoint; access needs an Entra token with a data role.
  // checkov:skip=CKV_AZURE_35: see CKV_AZURE_59: a default-deny firewall would lock out the Consumption plans’ host.
  name: '${prefix}xs${take(uniqueString(resourceGroup().id), 10)}' // ≤ 12 + 2 + 10 = 24 characters
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: sharedKeyAccess
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
