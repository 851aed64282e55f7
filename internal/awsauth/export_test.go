package awsauth

// EntryBytes lets the fuzz targets hold Fit's size of an entry against
// the render.
var EntryBytes = entryBytes
