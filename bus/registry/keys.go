package registry

// Keys of the node registry (the KV bucket RegistryBucket).
const (
	nodeKeys  = "*"       // every node's record
	procsKeys = "*.procs" // every node's process list
)

// registryNodeKey is the key of a node's record: <node>.
func NodeKey(nodeID string) string { return nodeID }

// registryProcsKey is the key of a node's process list: <node>.procs.
func ProcsKey(nodeID string) string { return nodeID + ".procs" }

// registrySubject is the subject a registry key is stored under:
// $KV.CORRAL_NODES.<key>.
func Subject(key string) string { return "$KV." + Bucket + "." + key }
