"""Images in DataFrames: reading files into Spark's image struct (`reading`), and converting
single image structs to and from arrays and PIL images (`structs`)."""
