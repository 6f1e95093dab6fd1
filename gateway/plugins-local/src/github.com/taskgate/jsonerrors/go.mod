module github.com/taskgate/jsonerrors

go 1.22
